//! Supervised child processes: spawning under a supervisor tied to this process, killing,
//! ports, logs and the wait for readiness.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{io_err, Error, Result};

/// The processes of a start attempt, killed if the attempt fails.
pub(crate) struct StartGuard {
    /// etcd, while starting.
    pub(crate) etcd: Option<Child>,
    /// kube-apiserver, while starting.
    pub(crate) apiserver: Option<Child>,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        kill(&mut self.apiserver);
        kill(&mut self.etcd);
    }
}

/// Stops a supervised process (if still held) and reaps it.
pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        // Closing the supervisor's stdin makes it SIGKILL the process; then reap both.
        drop(c.stdin.take());
        let _ = c.wait();
    }
}

/// Runs `"$@"` under a tiny `sh` supervisor that SIGKILLs it as soon as its stdin (a pipe held
/// only by this process) reaches end-of-file: when the harness is dropped, and also when the test
/// process dies without unwinding (SIGKILL, timeout), so no etcd or kube-apiserver is left behind.
/// The supervisor exits with the process's own status, so early exits are still seen.
const SUPERVISOR: &str =
    r#"exec 3<&0; "$@" </dev/null & c=$!; (read -r _ <&3; kill -9 "$c" 2>/dev/null) & wait "$c""#;

/// Starts `cmd` under [`SUPERVISOR`], its output to `log`.
pub(crate) fn spawn(cmd: &mut Command, log: &Path, name: &'static str) -> Result<Child> {
    let out = File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_err(format!("duplicating {}", log.display())))?;
    tracing::debug!(?cmd, "starting {name}");
    Command::new("sh")
        .arg("-c")
        .arg(SUPERVISOR)
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io_err(format!("starting {name} ({:?})", cmd.get_program())))
}

/// Whether a start-up log says that a port was taken.
pub(crate) fn port_taken(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// A loopback port free now (another process may take it before it is bound).
pub(crate) fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_err("binding a free loopback port"))?;
    let port = l
        .local_addr()
        .map_err(io_err("reading a bound port"))?
        .port();
    Ok(port)
}

/// The end of the log at `path`, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    const MAX: u64 = 6000;
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX {
        let _ = f.seek(SeekFrom::Start(len - MAX));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Waits until kube-apiserver answers `/readyz` through `client`, failing if either process of
/// `guard` exits first or `timeout` passes.
pub(crate) async fn wait_ready(
    client: &kube::Client,
    guard: &mut StartGuard,
    root: &Path,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    loop {
        for (name, child) in [
            ("etcd", &mut guard.etcd),
            ("kube-apiserver", &mut guard.apiserver),
        ] {
            if let Some(c) = child {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(Error::Exited {
                        name,
                        status,
                        log_tail: log_tail(&root.join(format!("{name}.log"))),
                    });
                }
            }
        }
        let req = http::Request::get("/readyz").body(Vec::new());
        if let Ok(req) = req {
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => tracing::debug!(%body, "readyz not ok yet"),
                Err(e) => tracing::debug!(error = %e, "readyz not reachable yet"),
            }
        }
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: "kube-apiserver /readyz to answer ok".into(),
                secs: timeout.as_secs(),
                log_tail: log_tail(&root.join("kube-apiserver.log")),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
