// Command pause is the pod sandbox ("infra") process: it holds the pod's namespaces, reaps
// zombies and exits on SIGINT/SIGTERM. It replaces registry.k8s.io/pause (a small C program)
// with a static Go binary so that the image can be built offline from source.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
