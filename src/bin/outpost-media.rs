//! `outpost-media`: the media process the agent starts when it has streams (every stream's
//! GStreamer pipeline and the WebRTC gateway; see `outpost::media::process`). Not meant to
//! be run by hand.

fn main() -> std::process::ExitCode {
    outpost::media::process::child::main()
}
