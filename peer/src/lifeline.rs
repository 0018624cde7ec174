//! Dying with the parent process: the lifeline of a spawned child.
//!
//! A process started with [`ENV`]`=1` and a pipe as its standard input, whose write end only its
//! parent holds, exits once that pipe reaches end-of-file: when the parent drops the pipe, and
//! also when the parent dies without cleaning up (SIGKILL, a test timeout, a panic that aborts),
//! because the kernel then closes the parent's descriptors. Unlike `PR_SET_PDEATHSIG`, this needs
//! no `unsafe` `pre_exec`, does not fire when merely the spawning *thread* of the parent exits,
//! has no window between fork and arming, and follows chains of processes (a test holds the
//! pipe of `mediachain devnet`, which holds the pipes of its peers). The tests start every peer,
//! devnet and operator this way (docs/testing.md); without the variable nothing reads stdin.
//! A process whose standard input is its lifeline takes no input from it, and one run with
//! `Command::output` must not be tied (`output` closes the pipe at once).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Set to `1` to make the process exit once its standard input reaches end-of-file.
pub const ENV: &str = "MEDIACHAIN_EXIT_ON_STDIN_CLOSE";

/// The exit status of a process whose lifeline closed and that did not stop by itself within
/// its grace period.
pub const EXIT_CODE: i32 = 70;

/// Whether this process was started with [`ENV`]`=1`.
pub fn requested() -> bool {
    std::env::var(ENV).as_deref() == Ok("1")
}

/// When [`requested`], starts a thread that reads standard input to its end, then calls
/// `on_close` (e.g. to start a clean shutdown), waits `grace` and exits with [`EXIT_CODE`] if the
/// process is still running. Returns whether the lifeline is armed.
pub fn arm(grace: Duration, on_close: impl FnOnce() + Send + 'static) -> bool {
    if !requested() {
        return false;
    }
    std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            wait_for_end_of_input();
            tracing::warn!("standard input closed (the parent process is gone): exiting");
            on_close();
            std::thread::sleep(grace);
            std::process::exit(EXIT_CODE);
        })
        .is_ok()
}

fn wait_for_end_of_input() {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 256];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Ties `cmd`'s process to this one: a piped standard input (held by the `Child` until it is
/// dropped) and [`ENV`]`=1`. The program must call [`arm`] (every binary of this workspace does).
pub fn tie(cmd: &mut Command) -> &mut Command {
    cmd.stdin(Stdio::piped()).env(ENV, "1")
}
