//! The processes of the edge_abuse bench: this executable started again in another role (the
//! peer, the abusers), each held until its input closes, and at a chosen CPU priority.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// The role of a process of the bench (`EDGE_BENCH_ROLE`): `peer`, `abusers`, or (unset) the
/// honest clients, which start the other two.
pub const ROLE: &str = "EDGE_BENCH_ROLE";

/// Blocks until this process's standard input closes (the parent ended the run).
pub fn wait_for_parent() {
    let mut sink = vec![];
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A process of the bench, its input held open until it is told to stop.
pub struct Role {
    /// The process.
    pub child: Child,
    /// Its input, open until it is told to stop.
    pub stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Role {
    /// Starts this executable as `role` with `env`, at the CPU priority (niceness, -20 to 19:
    /// the higher, the less CPU it gets while others want it) `nice`, or this process's own.
    pub fn start(role: &str, env: &[(&str, String)], nice: Option<i32>) -> Self {
        let exe = std::env::current_exe().unwrap();
        let increment = nice.map_or(0, |nice| nice - own_niceness());
        let mut command = if increment == 0 {
            Command::new(exe)
        } else {
            // POSIX `nice` adds its increment to the niceness it runs at.
            let mut nice_command = Command::new("nice");
            nice_command.arg("-n").arg(increment.to_string()).arg(exe);
            nice_command
        };
        command
            .env(ROLE, role)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its input and waits; what it printed last.
    pub fn stop(mut self) -> String {
        drop(self.stdin.take());
        let last = self.line();
        self.child.wait().unwrap();
        last
    }
}

/// This process's niceness (field 19 of `/proc/self/stat`; 0 when unreadable).
pub fn own_niceness() -> i32 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    rest.split_whitespace()
        .nth(16)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
