//! `outpost-media`: the media worker the agent starts for each stream (see
//! `outpost::media::worker`). Not meant to be run by hand.

fn main() -> std::process::ExitCode {
    outpost::media::worker::child::main()
}
