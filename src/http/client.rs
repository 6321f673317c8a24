//! A small HTTP/1.1 client on hyper and smol, for HTTP health checks and the CLI.
