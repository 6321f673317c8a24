//! A network namespace of a test's own (`ip netns`), with only loopback up, and nftables
//! rules inside it: packet loss and partitions between loopback addresses without touching
//! the host's network. Needs root, iproute2 and nftables (the test command installs them).
// Each test binary uses a part of it.
#![allow(dead_code)]

use std::process::Command;

/// A network namespace with only loopback up, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let run = |args: &[&str]| {
            let out = Command::new(args[0]).args(&args[1..]).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!(
                    "{args:?} failed: {} (this test needs root and iproute2, nftables)",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => panic!("{args:?}: {e} (install iproute2 and nftables)"),
            }
        };
        let ns = format!("{name}-{}", std::process::id());
        run(&["ip", "netns", "add", &ns]);
        let me = Netns(ns.clone());
        run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        me
    }

    /// Runs `nft` inside the namespace with the ruleset `rules`.
    pub fn nft(&self, rules: &str) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run nft (install nftables)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nft refused:\n{rules}");
    }

    /// The packets the ruleset's counters have counted.
    pub fn counted(&self) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "ruleset"])
            .output()
            .expect("run nft");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("packets ")
            .skip(1)
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
