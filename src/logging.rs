//! Logging to stderr for both executables (`outpost` and its media worker
//! `outpost-media`), with syslog priorities when stderr is the journal.

/// Logs to stderr, in colour on a terminal. When stderr is the journal (systemd's
/// `JOURNAL_STREAM` names its device and inode), each line starts with its syslog priority
/// (`<3>` error to `<7>` debug), which journald stores as the entry's level, and carries no
/// timestamp (the journal keeps its own).
pub fn init(level: &str) {
    let level = level.parse().unwrap_or(tracing::Level::INFO);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    if to_journal() {
        let format = tracing_subscriber::fmt::format()
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false);
        builder
            .with_ansi(false)
            .event_format(SyslogPrefix(format))
            .init();
    } else {
        // Colours for a terminal only (and not with NO_COLOR set): a file or a pipe gets
        // plain text.
        use std::io::IsTerminal;
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        builder.with_ansi(colour).init();
    }
}

/// Whether stderr is the journal's stream: `JOURNAL_STREAM` is `DEVICE:INODE` of the stream
/// systemd connected, which stays in the environment of children whose stderr may be
/// elsewhere, so it is compared with stderr itself (systemd.exec(5)).
pub fn to_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM").ok().and_then(|v| {
        let (d, i) = v.split_once(':')?;
        Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?))
    }) else {
        return false;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned();
    stderr
        .and_then(|fd| std::fs::File::from(fd).metadata())
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Puts an event's syslog priority before the line (sd-daemon(3)'s `<N>` prefixes).
struct SyslogPrefix<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for SyslogPrefix<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}
