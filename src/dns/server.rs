//! DNS sockets (in progress).
