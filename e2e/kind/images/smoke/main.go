// Command smoke is the kind smoke test's workload, a static binary in a FROM-scratch image:
//
//	smoke serve -dir /data -addr :8080   write a page onto the volume, serve the directory
//	smoke check -name NAME -want-ip IP -expect TEXT
//	                                     resolve NAME (Go's resolver, via /etc/resolv.conf, so
//	                                     CoreDNS), require IP among the answers, then GET
//	                                     http://NAME/ and require TEXT in the body (with retries)
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: smoke serve|check [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "check":
		err = check(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smoke:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "/data", "directory to write the page into and serve")
	addr := fs.String("addr", ":8080", "listen address")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	page := fmt.Sprintf("hello from %s on the PV\n", host)
	if err := os.WriteFile(filepath.Join(*dir, "index.html"), []byte(page), 0o644); err != nil {
		return err
	}
	fmt.Printf("serving %s on %s\n", *dir, *addr)
	return http.ListenAndServe(*addr, http.FileServer(http.Dir(*dir)))
}

func check(args []string) error {
	fs := flag.NewFlagSet("check", flag.ExitOnError)
	name := fs.String("name", "", "DNS name of the service")
	wantIP := fs.String("want-ip", "", "ClusterIP the name must resolve to")
	expect := fs.String("expect", "", "text the page must contain")
	tries := fs.Int("tries", 30, "attempts, 2s apart")
	_ = fs.Parse(args)
	var last error
	for i := 0; i < *tries; i++ {
		if i > 0 {
			time.Sleep(2 * time.Second)
		}
		addrs, err := net.LookupHost(*name)
		if err != nil {
			last = fmt.Errorf("DNS lookup %s: %w", *name, err)
			continue
		}
		found := false
		for _, a := range addrs {
			found = found || a == *wantIP
		}
		if !found {
			last = fmt.Errorf("DNS %s -> %v, want %s", *name, addrs, *wantIP)
			continue
		}
		fmt.Printf("DNS-OK %s -> %v\n", *name, addrs)
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + *name + "/")
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !strings.Contains(string(body), *expect) {
			last = fmt.Errorf("GET http://%s/: status %d, body %q, err %v", *name, resp.StatusCode, body, err)
			continue
		}
		fmt.Printf("HTTP-OK %s", body)
		return nil
	}
	return last
}
