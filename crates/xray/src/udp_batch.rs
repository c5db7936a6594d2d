//! Sends a batch of datagrams to one peer with as few system calls as the platform allows: on
//! Linux one `sendmmsg` for up to [`MAX_BATCH`] datagrams, elsewhere one `send_to` each.
//!
//! Under load the emitter finds several segments waiting each time it wakes; sending them in one
//! call saves a system call (and its kernel entry) per datagram, which is most of what a
//! datagram to a local daemon costs.

use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Most datagrams handed to the kernel in one call. Small on purpose: on loopback one call
/// lands the whole batch in the daemon's receive buffer before it can read any (212 KiB by
/// default on Linux, and a datagram takes its size plus about 1 KiB of it), so a large batch of
/// large documents would be dropped by the kernel; sixteen of a few KiB fit.
pub const MAX_BATCH: usize = 16;

/// What became of each datagram of a batch, in order: `Ok` sent, `Err` why not.
pub type BatchOutcome = Vec<std::io::Result<()>>;

/// Sends every datagram of `datagrams` to `peer` through `socket`, waiting while the socket's
/// buffer is full; returns one outcome per datagram.
pub async fn send_batch(
    socket: &UdpSocket,
    peer: SocketAddr,
    datagrams: &[Vec<u8>],
) -> BatchOutcome {
    let mut outcome = Vec::with_capacity(datagrams.len());
    for chunk in datagrams.chunks(MAX_BATCH) {
        send_chunk(socket, peer, chunk, &mut outcome).await;
    }
    outcome
}

#[cfg(target_os = "linux")]
async fn send_chunk(
    socket: &UdpSocket,
    peer: SocketAddr,
    chunk: &[Vec<u8>],
    outcome: &mut BatchOutcome,
) {
    use tokio::io::Interest;
    let mut next = 0;
    while next < chunk.len() {
        match socket
            .async_io(Interest::WRITABLE, || {
                linux::sendmmsg(socket, peer, &chunk[next..])
            })
            .await
        {
            // The kernel took the first `sent` (at least one).
            Ok(sent) => {
                outcome.extend((0..sent).map(|_| Ok(())));
                next += sent;
            }
            // The first datagram failed (the others were not tried): count it, go on with the
            // rest.
            Err(error) => {
                outcome.push(Err(error));
                next += 1;
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
async fn send_chunk(
    socket: &UdpSocket,
    peer: SocketAddr,
    chunk: &[Vec<u8>],
    outcome: &mut BatchOutcome,
) {
    for datagram in chunk {
        outcome.push(socket.send_to(datagram, peer).await.map(|_| ()));
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! `sendmmsg(2)` over a tokio socket's descriptor.

    use std::net::SocketAddr;
    use std::os::fd::AsRawFd;
    use tokio::net::UdpSocket;

    /// One `sendmmsg` call for `datagrams` (at most `MAX_BATCH`) to `peer`: how many the kernel
    /// took, or the error of the first (`WouldBlock` when the socket's buffer is full, which
    /// tokio's `async_io` waits out).
    pub fn sendmmsg(
        socket: &UdpSocket,
        peer: SocketAddr,
        datagrams: &[Vec<u8>],
    ) -> std::io::Result<usize> {
        let datagrams = &datagrams[..datagrams.len().min(super::MAX_BATCH)];
        let (mut address, address_len) = socket_address(peer);
        let mut iovecs: Vec<libc::iovec> = datagrams
            .iter()
            .map(|datagram| libc::iovec {
                iov_base: datagram.as_ptr() as *mut libc::c_void,
                iov_len: datagram.len(),
            })
            .collect();
        let mut messages: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iovec| {
                // SAFETY: an all-zero `msghdr` is a valid empty one (no control data, no flags).
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = (&raw mut address).cast();
                header.msg_namelen = address_len;
                header.msg_iov = iovec;
                header.msg_iovlen = 1;
                libc::mmsghdr {
                    msg_hdr: header,
                    msg_len: 0,
                }
            })
            .collect();
        // SAFETY: every pointer in `messages` (the address, the iovecs and the datagrams they
        // point to) outlives the call, and `messages.len()` entries are initialized.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                messages.as_mut_ptr(),
                messages.len() as libc::c_uint,
                0,
            )
        };
        if sent < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    /// `peer` as the C socket address the kernel reads.
    fn socket_address(peer: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
        // SAFETY: an all-zero `sockaddr_storage` is valid; the family-specific form is written
        // over its start, which is large and aligned enough for either.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = match peer {
            SocketAddr::V4(v4) => {
                let address = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: see above.
                unsafe { std::ptr::write((&raw mut storage).cast(), address) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let address = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: see above.
                unsafe { std::ptr::write((&raw mut storage).cast(), address) };
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (storage, len as libc::socklen_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(bind: &str, count: usize) {
        let receiver = std::net::UdpSocket::bind(bind).unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let peer = receiver.local_addr().unwrap();
        // Received as they come: a batch can be larger than the socket's receive buffer.
        let receiving = std::thread::spawn(move || {
            let mut buffer = vec![0u8; 65_536];
            (0..count)
                .map(|_| {
                    let received = receiver.recv(&mut buffer).unwrap();
                    buffer[..received].to_vec()
                })
                .collect::<Vec<_>>()
        });
        let sender = UdpSocket::bind(if peer.is_ipv4() {
            "127.0.0.1:0"
        } else {
            "[::1]:0"
        })
        .await
        .unwrap();
        // Sizes that differ, so that lengths are not mixed up; small, so that all of them fit in
        // the receiver's buffer however late its thread runs.
        let datagrams: Vec<Vec<u8>> = (0..count)
            .map(|i| format!("{i}:{}", "x".repeat(i * 13 % 200)).into_bytes())
            .collect();
        let outcome = send_batch(&sender, peer, &datagrams).await;
        assert_eq!(outcome.len(), count);
        assert!(outcome.iter().all(Result::is_ok), "{outcome:?}");
        let received = tokio::task::block_in_place(|| receiving.join().unwrap());
        assert_eq!(received, datagrams);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_larger_than_one_call_arrives_whole_and_in_order() {
        round_trip("127.0.0.1:0", MAX_BATCH * 2 + 5).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn ipv6_peers_are_addressed_as_well() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() {
            eprintln!("no IPv6 loopback here: skipped");
            return;
        }
        round_trip("[::1]:0", 10).await;
    }

    #[tokio::test]
    async fn a_datagram_the_kernel_refuses_fails_alone() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // Larger than a UDP datagram can be: EMSGSIZE for that one, the others are sent.
        let datagrams = vec![b"a".to_vec(), vec![0u8; 70_000], b"c".to_vec()];
        let outcome = send_batch(&sender, receiver.local_addr().unwrap(), &datagrams).await;
        assert!(
            outcome[0].is_ok() && outcome[1].is_err() && outcome[2].is_ok(),
            "{outcome:?}"
        );
    }
}
