//! Telling systemd (`Type=notify`) what the daemon is doing.

use std::path::Path;

/// Tells systemd (`Type=notify`) about the daemon's state, when started by
/// it (`$NOTIFY_SOCKET` set): `READY=1`, `RELOADING=1`, `STOPPING=1`.
pub fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(datagram) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = socket.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| datagram.send_to_addr(state.as_bytes(), &addr))
    } else {
        datagram.send_to(state.as_bytes(), Path::new(&socket))
    };
    if let Err(e) = result {
        tracing::warn!("cannot notify systemd ({state}): {e}");
    }
}
