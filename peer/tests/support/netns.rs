//! Two network namespaces for partition tests, joined by a direct link.
//!
//! Each side has an address on the cross link (`p2p_hosts`, 10.<x>.3.1 and 10.<x>.3.2), where
//! its peers listen for the overlay, and an address on a link to the root namespace (`api_hosts`,
//! 10.<x>.1.2 and 10.<x>.2.2), where the test process reaches their HTTP APIs. `partition()`
//! removes the cross link's route on both sides (local addresses stay reachable, so peers of the
//! same side still talk); `heal()` restores it. Nothing is routed through the root namespace, and
//! everything is removed on drop.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces with a cuttable link between them.
pub struct Partitionable {
    pub names: [String; 2],
    pub api_hosts: [String; 2],
    pub p2p_hosts: [String; 2],
    cross: [String; 2],
    cross_subnet: String,
    root_links: [String; 2],
}

impl Partitionable {
    /// Creates the namespaces; fails with the reason (not root, no iproute2).
    pub fn create() -> Result<Self, String> {
        // Distinct for each pair a test process makes (its tests run in parallel).
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = (std::process::id() + made * 67) % 200 + 20;
        let s = |side: usize| if side == 0 { "a" } else { "b" };
        let me = Self {
            names: [format!("mc{tag}a"), format!("mc{tag}b")],
            api_hosts: [format!("10.{tag}.1.2"), format!("10.{tag}.2.2")],
            p2p_hosts: [format!("10.{tag}.3.1"), format!("10.{tag}.3.2")],
            cross: [format!("mc{tag}xa"), format!("mc{tag}xb")],
            cross_subnet: format!("10.{tag}.3.0/24"),
            root_links: [format!("mc{tag}ra"), format!("mc{tag}rb")],
        };
        for side in 0..2 {
            let ns = &me.names[side];
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            // Link to the root namespace, for the test's HTTP requests.
            let inner = format!("mc{tag}i{}", s(side));
            ip(&[
                "link",
                "add",
                &me.root_links[side],
                "type",
                "veth",
                "peer",
                "name",
                &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", ns])?;
            ip(&[
                "addr",
                "add",
                &format!("10.{tag}.{}.1/24", side + 1),
                "dev",
                &me.root_links[side],
            ])?;
            ip(&["link", "set", &me.root_links[side], "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", me.api_hosts[side]),
                "dev",
                &inner,
            ])?;
            ip(&["-n", ns, "link", "set", &inner, "up"])?;
        }
        // The cross link.
        ip(&[
            "link",
            "add",
            &me.cross[0],
            "netns",
            &me.names[0],
            "type",
            "veth",
            "peer",
            "name",
            &me.cross[1],
            "netns",
            &me.names[1],
        ])?;
        for side in 0..2 {
            ip(&[
                "-n",
                &me.names[side],
                "addr",
                "add",
                &format!("{}/24", me.p2p_hosts[side]),
                "dev",
                &me.cross[side],
            ])?;
            ip(&["-n", &me.names[side], "link", "set", &me.cross[side], "up"])?;
        }
        Ok(me)
    }

    /// Cuts the two sides apart (each side's peers still reach each other and the test).
    pub fn partition(&self) -> Result<(), String> {
        for side in 0..2 {
            ip(&[
                "-n",
                &self.names[side],
                "route",
                "del",
                &self.cross_subnet,
                "dev",
                &self.cross[side],
            ])?;
        }
        Ok(())
    }

    /// Joins them again.
    pub fn heal(&self) -> Result<(), String> {
        for side in 0..2 {
            ip(&[
                "-n",
                &self.names[side],
                "route",
                "replace",
                &self.cross_subnet,
                "dev",
                &self.cross[side],
            ])?;
        }
        Ok(())
    }
}

impl Drop for Partitionable {
    fn drop(&mut self) {
        for side in 0..2 {
            let _ = ip(&["link", "del", &self.root_links[side]]);
            let _ = ip(&["netns", "del", &self.names[side]]);
        }
    }
}
