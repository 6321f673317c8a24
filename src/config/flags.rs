//! The `agent` command's flags, spelled as Consul spells them. Go's flag package accepts
//! `-flag` and `--flag` alike; [`normalize_args`] lets clap do the same.

use std::path::PathBuf;

use clap::Args;

/// Flags of `outpost agent`. Every value here overrides the same setting in config files.
#[derive(Args, Clone, Debug, Default)]
pub struct AgentFlags {
    /// Development mode: in memory, bound to 127.0.0.1, a server that is its own leader,
    /// example services (unless -config-dir or -config-file is given).
    #[arg(long)]
    pub dev: bool,
    /// Run as a server (holds the replicated catalog).
    #[arg(long)]
    pub server: bool,
    /// This server is the only one and its own leader.
    #[arg(long)]
    pub bootstrap: bool,
    /// Wait for N servers before electing a leader.
    #[arg(long = "bootstrap-expect", value_name = "N")]
    pub bootstrap_expect: Option<u32>,
    /// Node name (default: the host name).
    #[arg(long)]
    pub node: Option<String>,
    /// Datacenter (default: dc1).
    #[arg(long)]
    pub datacenter: Option<String>,
    /// DNS domain (default: consul.).
    #[arg(long)]
    pub domain: Option<String>,
    /// Address for cluster traffic (default: 0.0.0.0).
    #[arg(long)]
    pub bind: Option<String>,
    /// Address for the client interfaces: DNS, HTTP (default: 127.0.0.1).
    #[arg(long)]
    pub client: Option<String>,
    /// Address advertised to other nodes and in DNS answers.
    #[arg(long)]
    pub advertise: Option<String>,
    /// Directory for persistent state.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of config files (*.json), read in name order; repeatable.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub config_dir: Vec<PathBuf>,
    /// A single config file; repeatable.
    #[arg(long = "config-file", value_name = "FILE")]
    pub config_file: Vec<PathBuf>,
    /// DNS port (default 8600; -1 disables).
    #[arg(long = "dns-port", value_name = "PORT", allow_hyphen_values = true)]
    pub dns_port: Option<i32>,
    /// HTTP API port (default 8500; -1 disables).
    #[arg(long = "http-port", value_name = "PORT", allow_hyphen_values = true)]
    pub http_port: Option<i32>,
    /// HTTPS API port (default: disabled).
    #[arg(long = "https-port", value_name = "PORT", allow_hyphen_values = true)]
    pub https_port: Option<i32>,
    /// Gossip (LAN) port (default 8301).
    #[arg(
        long = "serf-lan-port",
        value_name = "PORT",
        allow_hyphen_values = true
    )]
    pub serf_lan_port: Option<i32>,
    /// Server RPC/Raft port (default 8300).
    #[arg(long = "server-port", value_name = "PORT", allow_hyphen_values = true)]
    pub server_port: Option<i32>,
    /// Upstream DNS server for names outside the domain (IP or IP:port); repeatable.
    #[arg(long)]
    pub recursor: Vec<String>,
    /// Address to join at start, retried until it works; repeatable.
    #[arg(long = "retry-join", value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// Address to join at start; repeatable.
    #[arg(long, value_name = "ADDR")]
    pub join: Vec<String>,
    /// Gossip encryption key (32 bytes in base64; `outpost keygen` makes one).
    #[arg(long, value_name = "KEY")]
    pub encrypt: Option<String>,
    /// Board profile: rpi4, rpi5, rk3588, imx8mp, jetson-orin, qemu-arm64, generic, or the
    /// path of a profile file (*.json). Default: the profile the device tree matches.
    #[arg(long, value_name = "NAME|FILE")]
    pub board: Option<String>,
    /// Where to read the device tree that identifies the board (default /proc/device-tree).
    #[arg(long = "device-tree", value_name = "DIR")]
    pub device_tree: Option<PathBuf>,
    /// trace, debug, info, warn or error (default info).
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
}

/// Rewrites Go-style `-flag` / `-flag=value` into `--flag` for every long flag `known`
/// lists, leaving values (such as `-1`) and anything after `--` alone.
pub fn normalize_args(args: impl IntoIterator<Item = String>, known: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = false;
    for a in args {
        if rest || a == "--" {
            rest = true;
            out.push(a);
            continue;
        }
        let name = a.strip_prefix('-').filter(|s| !s.starts_with('-'));
        let name = name.map(|s| s.split_once('=').map_or(s, |(n, _)| n));
        match name {
            Some(n) if n.len() > 1 && known.contains(&n) => out.push(format!("-{a}")),
            _ => out.push(a),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        let known = ["data-dir", "dev", "dns-port"];
        assert_eq!(
            normalize_args(
                v(&[
                    "outpost",
                    "agent",
                    "-dev",
                    "-data-dir=/x",
                    "--dns-port",
                    "-1",
                    "-h"
                ]),
                &known
            ),
            v(&[
                "outpost",
                "agent",
                "--dev",
                "--data-dir=/x",
                "--dns-port",
                "-1",
                "-h"
            ])
        );
        assert_eq!(
            normalize_args(v(&["-unknown", "--", "-dev"]), &known),
            v(&["-unknown", "--", "-dev"])
        );
    }
}
