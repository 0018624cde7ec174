//! What the benchmarks read of a process from `/proc`: peak resident memory, CPU time, and how
//! long its threads waited for a CPU.

/// Peak resident set size of process `pid` in MiB (`VmHWM`; 0 when unreadable).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU seconds (user + system) process `pid` has used so far (`utime` + `stime` of
/// `/proc/<pid>/stat`; 0 when unreadable). `None` reads this process.
pub fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = pid.map_or("/proc/self/stat".to_string(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 (state) comes first, so utime (14) and stime (15) are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / USER_HZ
}

/// The unit of `/proc/<pid>/stat` times: `USER_HZ`, 100 ticks a second on Linux.
const USER_HZ: f64 = 100.0;

/// Seconds the threads of process `pid` (`None`: this process) have run, and waited on a run
/// queue for a CPU, so far (fields 1 and 2, in ns, of each `/proc/<pid>/task/<tid>/schedstat`;
/// threads that have exited are not counted). A thread's wait per second it ran is the
/// scheduling delay the machine's other load imposes on it.
#[allow(dead_code)] // not every benchmark reads it
pub fn sched_seconds(pid: Option<u32>) -> (f64, f64) {
    let dir = pid.map_or("/proc/self/task".to_string(), |p| format!("/proc/{p}/task"));
    let mut sums = (0u64, 0u64);
    for task in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        let mut fields = stat
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        sums.0 += fields.next().unwrap_or(0);
        sums.1 += fields.next().unwrap_or(0);
    }
    (sums.0 as f64 / 1e9, sums.1 as f64 / 1e9)
}
