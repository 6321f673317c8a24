//! raft-rs logs through `slog`; this drain passes its records on to `tracing`, one level
//! down (raft-rs says `info` for every election, which is `debug` for an operator; the
//! core logs leadership changes itself).

use std::fmt::{self, Write as _};

use slog::{Drain, KV as _, Level, OwnedKVList, Record};

struct TracingDrain {
    id: u64,
}

/// Collects a record's key-value pairs as ` k=v`.
struct Pairs(String);

impl slog::Serializer for Pairs {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let enabled = match record.level() {
            Level::Critical | Level::Error => tracing::enabled!(tracing::Level::ERROR),
            Level::Warning => tracing::enabled!(tracing::Level::WARN),
            Level::Info => tracing::enabled!(tracing::Level::DEBUG),
            Level::Debug | Level::Trace => tracing::enabled!(tracing::Level::TRACE),
        };
        if !enabled {
            return Ok(());
        }
        let mut pairs = Pairs(String::new());
        let _ = record.kv().serialize(record, &mut pairs);
        let (id, msg, kv) = (self.id, record.msg(), pairs.0);
        match record.level() {
            Level::Critical | Level::Error => tracing::error!("raft {id}: {msg}{kv}"),
            Level::Warning => tracing::warn!("raft {id}: {msg}{kv}"),
            Level::Info => tracing::debug!("raft {id}: {msg}{kv}"),
            Level::Debug | Level::Trace => tracing::trace!("raft {id}: {msg}{kv}"),
        }
        Ok(())
    }
}

/// A logger for the raft-rs instance of server `id`.
pub fn logger(id: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain { id }.fuse(), slog::o!())
}
