//! The `outpost` command: parses Consul-style flags, turns every error into a message that
//! names its culprit, and hands over to the agent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use outpost::agent;
use outpost::cli::{self, ApiFlags, CatalogCmd, KvCmd, ServicesCmd};
use outpost::config::{self, AgentFlags};
use outpost::tls::{HttpsServer, ServeOptions};

#[derive(Parser)]
#[command(
    name = "outpost",
    version,
    about = "Service catalog, Consul-compatible DNS and video gateway for edge boxes"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the agent (`outpost agent -dev` for a ready-to-try local agent).
    Agent(Box<AgentFlags>),
    /// Check config files and exit: prints the first problem with file:line:col.
    Validate {
        /// Config files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a new gossip encryption key (32 random bytes, base64).
    Keygen,
    /// List the cluster's members.
    Members {
        #[command(flatten)]
        api: ApiFlags,
        /// Show every member tag.
        #[arg(long)]
        detailed: bool,
    },
    /// Query the catalog.
    #[command(subcommand)]
    Catalog(CatalogCmd),
    /// Register and deregister services with the local agent.
    #[command(subcommand)]
    Services(ServicesCmd),
    /// Read and write the key/value store.
    #[command(subcommand)]
    Kv(KvCmd),
    /// Make the agent re-read its config files.
    Reload {
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Make the agent join a cluster through the given members' gossip addresses.
    Join {
        #[command(flatten)]
        api: ApiFlags,
        /// Addresses (host or IP, port 8301 unless given).
        #[arg(required = true, value_name = "ADDR")]
        addrs: Vec<String>,
    },
    /// Manage the agent's gossip encryption keys.
    Keyring {
        #[command(flatten)]
        api: ApiFlags,
        /// Install a new key.
        #[arg(long, value_name = "KEY", group = "op")]
        install: Option<String>,
        /// Make an installed key the one used to encrypt.
        #[arg(long = "use", value_name = "KEY", group = "op")]
        use_key: Option<String>,
        /// Remove a key (not the one in use).
        #[arg(long, value_name = "KEY", group = "op")]
        remove: Option<String>,
        /// List the installed keys.
        #[arg(long, group = "op")]
        list: bool,
    },
    /// Cluster operations (`operator raft list-peers`, `operator raft remove-peer`).
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Make the agent leave the cluster and stop.
    Leave {
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Show the agent's status and statistics.
    Info {
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Serve a directory over HTTPS (GET and HEAD of files, directory listings) until
    /// SIGINT or SIGTERM; without -cert and -key, with a new self-signed certificate.
    ServeTls(ServeTlsFlags),
    /// Print the version.
    Version,
}

#[derive(Subcommand)]
enum OperatorCmd {
    /// The Raft servers.
    #[command(subcommand)]
    Raft(RaftCmd),
}

#[derive(Subcommand)]
enum RaftCmd {
    /// List the Raft servers: node, ID, address, leader or follower.
    ListPeers {
        #[command(flatten)]
        api: ApiFlags,
    },
    /// Remove a server from the Raft configuration (a dead one that will not come back).
    RemovePeer {
        #[command(flatten)]
        api: ApiFlags,
        /// The server's Raft ID (from list-peers).
        #[arg(long)]
        id: Option<String>,
        /// The server's Raft address, IP:port.
        #[arg(long)]
        address: Option<String>,
    },
}

#[derive(clap::Args)]
struct ServeTlsFlags {
    /// The directory to serve.
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Certificate chain (PEM, the server's certificate first); needs -key.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Private key of -cert (PEM, unencrypted).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Require client certificates that chain to these CA certificates (PEM).
    #[arg(long = "client-ca", value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Address to listen on (IP:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:1443")]
    addr: String,
}

fn main() -> ExitCode {
    let known = long_flags(&Cli::command());
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let args = config::normalize_args(std::env::args(), &known);
    let cli = Cli::parse_from(args);
    match cli.command {
        Cmd::Agent(flags) => run_agent(*flags),
        Cmd::Validate { paths } => validate(paths),
        Cmd::Keygen => keygen(),
        Cmd::Members { api, detailed } => print(cli::members(&api, detailed)),
        Cmd::Catalog(c) => print(cli::catalog(c)),
        Cmd::Services(c) => print(cli::services(c)),
        Cmd::Kv(c) => print(cli::kv(c)),
        Cmd::Reload { api } => print(cli::reload(&api)),
        Cmd::Leave { api } => print(cli::leave(&api)),
        Cmd::Join { api, addrs } => print(cli::join(&api, &addrs)),
        Cmd::Operator(OperatorCmd::Raft(RaftCmd::ListPeers { api })) => {
            print(cli::raft_list_peers(&api))
        }
        Cmd::Operator(OperatorCmd::Raft(RaftCmd::RemovePeer { api, id, address })) => print(
            cli::raft_remove_peer(&api, id.as_deref(), address.as_deref()),
        ),
        Cmd::Keyring {
            api,
            install,
            use_key,
            remove,
            list,
        } => print(match (install, use_key, remove) {
            (Some(k), _, _) => cli::keyring(&api, "POST", &k),
            (_, Some(k), _) => cli::keyring(&api, "PUT", &k),
            (_, _, Some(k)) => cli::keyring(&api, "DELETE", &k),
            _ if list => cli::keyring_list(&api),
            _ => Err("keyring: give one of -install, -use, -remove or -list".into()),
        }),
        Cmd::Info { api } => print(cli::info(&api)),
        Cmd::ServeTls(flags) => serve_tls(flags),
        Cmd::Version => {
            println!(
                "outpost v{} (revision {})",
                env!("CARGO_PKG_VERSION"),
                env!("OUTPOST_GIT_REVISION")
            );
            ExitCode::SUCCESS
        }
    }
}

/// Prints a client command's output, or its error as one line on stderr.
fn print(r: cli::CliResult) -> ExitCode {
    match r {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_agent(flags: AgentFlags) -> ExitCode {
    // First, while nothing else holds descriptors: the sockets systemd may have passed in.
    let fail = |e: String| {
        agent::notify::status(&format!("cannot start: {e}"));
        let priority = if outpost::logging::to_journal() {
            "<3>"
        } else {
            ""
        };
        eprintln!("{priority}outpost: {e}");
        ExitCode::FAILURE
    };
    let dns_sockets = match agent::notify::take_dns_sockets() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let host = agent::host_info();
    let config = match config::load(&flags, &host) {
        Ok(c) => c,
        Err(e) => return fail(format!("config error: {e}")),
    };
    outpost::logging::init(&config.log_level);
    match agent::run(flags, config, host, dns_sockets) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            // The journal has the line above already.
            if !outpost::logging::to_journal() {
                eprintln!("outpost: {e}");
            }
            agent::notify::status(&format!("cannot start: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn validate(paths: Vec<PathBuf>) -> ExitCode {
    let mut flags = AgentFlags {
        dev: true,
        ..AgentFlags::default()
    };
    for p in paths {
        if p.is_dir() {
            flags.config_dir.push(p)
        } else {
            flags.config_file.push(p)
        }
    }
    match config::load(&flags, &agent::host_info()) {
        Ok(c) => {
            println!(
                "Configuration is valid! ({} file(s), {} service(s))",
                c.files.len(),
                c.services.len()
                    + c.external_nodes
                        .iter()
                        .map(|n| n.services.len())
                        .sum::<usize>()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outpost: config error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn keygen() -> ExitCode {
    use base64::Engine;
    let mut key = [0u8; 32];
    match agent::os_random(&mut key) {
        Ok(()) => {
            println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("outpost: cannot read random bytes from /dev/urandom: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `outpost serve-tls`: checks every file before listening, prints where it serves, and
/// serves until SIGINT or SIGTERM. Errors are one line on stderr and exit 1.
fn serve_tls(flags: ServeTlsFlags) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("outpost: serve-tls: {msg}");
        ExitCode::FAILURE
    };
    let Ok(addr) = flags.addr.parse::<SocketAddr>() else {
        return fail(format!(
            "-addr {:?}: expected IP:PORT, such as 0.0.0.0:1443 or [::1]:8443",
            flags.addr
        ));
    };
    // Registered before serving, so a signal right after the "serving" line is not lost.
    let mut signals =
        match async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int]) {
            Ok(s) => s,
            Err(e) => return fail(format!("cannot handle SIGINT and SIGTERM: {e}")),
        };
    outpost::logging::init("warn");
    let mut opts = ServeOptions::new(&flags.dir, PathBuf::new(), PathBuf::new());
    opts.client_ca = flags.client_ca;
    opts.addr = addr;
    let started = match (flags.cert, flags.key) {
        (Some(cert), Some(key)) => {
            opts.cert = cert;
            opts.key = key;
            HttpsServer::start(opts)
        }
        (Some(cert), None) => {
            return fail(format!(
                "-cert {} needs -key FILE too (or neither, for a self-signed certificate)",
                cert.display()
            ));
        }
        (None, Some(key)) => {
            return fail(format!(
                "-key {} needs -cert FILE too (or neither, for a self-signed certificate)",
                key.display()
            ));
        }
        (None, None) => {
            let names = self_signed_names();
            HttpsServer::start_self_signed(opts, &names).inspect(|server| {
                println!("self-signed certificate for {}", names.join(", "));
                println!("SHA-256 fingerprint: {}", server.fingerprint_sha256());
            })
        }
    };
    let server = match started {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    println!(
        "serving {} on https://{}",
        flags.dir.display(),
        server.addr()
    );
    let signal = smol::block_on(futures_lite::StreamExt::next(&mut signals));
    drop(server);
    if let Some(Ok(sig)) = signal {
        eprintln!("outpost: serve-tls: stopped by {sig:?}");
    }
    ExitCode::SUCCESS
}

/// The names a self-signed certificate is for: this host's name (when it is a usable DNS
/// name), `localhost`, `127.0.0.1` and `::1`.
fn self_signed_names() -> Vec<String> {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let usable = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let mut names = Vec::new();
    if usable && host != "localhost" {
        names.push(host);
    }
    names.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
    names
}

/// Every long flag of every subcommand, for Go-style `-flag` spelling.
fn long_flags(cmd: &clap::Command) -> Vec<String> {
    let mut v: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(String::from))
        .collect();
    v.push("help".into());
    v.push("version".into());
    for sub in cmd.get_subcommands() {
        v.extend(long_flags(sub));
    }
    v
}
