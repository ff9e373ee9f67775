//! The counters check on real loopback connections: the caller's side is read through
//! sock_diag in this process's own network namespace, as the service reads a container's.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;

use super::*;
use crate::netns::{NetnsHandles, NetnsRef};
use crate::tcp_counters::MIN_TCP_INFO;

/// A connected pair: (client, accepted server side).
fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

fn here() -> NetnsRef {
    NetnsRef(Arc::new(NetnsHandles::open(std::process::id()).unwrap()))
}

/// What the service checks for a connection whose caller socket is `client`.
fn against(client: &TcpStream) -> ConnCheck {
    ConnCheck::Counters {
        netns: here(),
        client: client.local_addr().unwrap(),
        server: client.peer_addr().unwrap(),
    }
}

fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).unwrap();
    b
}

#[test]
fn both_ends_of_one_connection_agree() {
    let (mut c, mut s) = pair();
    c.write_all(b"cca.check\n").unwrap();
    read_n(&mut s, 10);
    let check = against(&c);
    verify(Some(s.as_fd()), &check).unwrap();
    // The counters themselves: the caller sent what we received, and nothing came back yet.
    let ConnCheck::Counters {
        netns,
        client,
        server,
    } = &check
    else {
        unreachable!()
    };
    let theirs = netns.0.peer_counters(*client, *server).unwrap().unwrap();
    let ours = own_counters(&s).unwrap();
    assert_eq!((theirs.bytes_sent, ours.bytes_received), (10, 10));
    assert_eq!((theirs.bytes_received, ours.bytes_sent), (0, 0));
    // A long connection after some output still agrees.
    s.write_all(&[b'x'; 50_000]).unwrap();
    read_n(&mut c, 50_000);
    verify(Some(s.as_fd()), &check).unwrap();
    // So does a client that half-closed after its command (its FIN is counted on our side).
    let (mut c, mut s) = pair();
    c.write_all(b"job.list\n").unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    verify(Some(s.as_fd()), &against(&c)).unwrap();
}

/// The attack of issue 23: the victim's socket took part in an earlier exchange (it was
/// reading a `job.watch`); the neighbour reset the service's side and reconnected from the
/// same 4-tuple, so the service's new connection is not the victim socket's. Simulated with
/// two connections: the check of the attacker's connection finds the victim's socket.
#[test]
fn security_a_victims_socket_does_not_vouch_for_another_connection() {
    let (mut victim, mut victim_srv) = pair();
    victim.write_all(b"job.watch 0123456789abcdef\n").unwrap();
    read_n(&mut victim_srv, 26);
    victim_srv.write_all(b"line of output\n").unwrap();
    read_n(&mut victim, 15);
    let (mut attacker, mut srv) = pair();
    attacker.write_all(b"job.start /bin/sh -c x\n").unwrap();
    read_n(&mut srv, 23);
    let err = verify(Some(srv.as_fd()), &against(&victim)).unwrap_err();
    assert!(
        matches!(err, CheckError::Mismatch(Mismatch::ReceivedUnsent)),
        "{err}"
    );
    // The genuine connection of each still passes.
    verify(Some(srv.as_fd()), &against(&attacker)).unwrap();
    verify(Some(victim_srv.as_fd()), &against(&victim)).unwrap();
}

/// A fresh victim socket that has not sent its command yet cannot vouch for a connection that
/// received one; one that sent a longer command cannot vouch for a shorter one.
#[test]
fn security_a_fresh_victim_socket_must_have_sent_what_we_received() {
    let (silent, _silent_srv) = pair();
    let (mut attacker, mut srv) = pair();
    attacker.write_all(b"cca.check\n").unwrap();
    read_n(&mut srv, 10);
    let err = verify(Some(srv.as_fd()), &against(&silent)).unwrap_err();
    assert!(
        matches!(err, CheckError::Mismatch(Mismatch::ReceivedUnsentByCaller)),
        "{err}"
    );
    let (mut talker, mut talker_srv) = pair();
    talker.write_all(b"job.watch 0123456789abcdef\n").unwrap();
    read_n(&mut talker_srv, 26);
    // Its command is acknowledged (bounded wait for the ACK to reach the talker).
    let (tl, tp) = (talker.local_addr().unwrap(), talker.peer_addr().unwrap());
    let ns = here();
    for _ in 0..500 {
        if ns.0.peer_counters(tl, tp).unwrap().unwrap().bytes_acked == 26 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let err = verify(Some(srv.as_fd()), &against(&talker)).unwrap_err();
    assert!(
        matches!(err, CheckError::Mismatch(Mismatch::AckedUnreceived)),
        "{err}"
    );
}

#[test]
fn no_caller_socket_or_no_tcp_counters_fail_closed() {
    let (c, s) = pair();
    let gone = ConnCheck::Counters {
        netns: here(),
        client: "127.0.0.1:1".parse::<SocketAddr>().unwrap(),
        server: c.peer_addr().unwrap(),
    };
    assert!(matches!(
        verify(Some(s.as_fd()), &gone),
        Err(CheckError::Gone)
    ));
    assert!(matches!(
        verify(None, &against(&c)),
        Err(CheckError::Unavailable(_))
    ));
    assert!(matches!(
        verify(Some(s.as_fd()), &ConnCheck::Unavailable),
        Err(CheckError::Unavailable(_))
    ));
    verify(None, &ConnCheck::NotApplicable).unwrap();
    assert_eq!(TcpCounters::parse(&[0u8; MIN_TCP_INFO - 1]), None);
}

#[test]
fn each_bound_is_checked() {
    let ours = TcpCounters {
        bytes_acked: 100,
        bytes_received: 10,
        bytes_sent: 120,
        segs_out: 8,
        segs_in: 5,
    };
    let theirs = TcpCounters {
        bytes_acked: 10,
        bytes_received: 110,
        bytes_sent: 10,
        segs_out: 5,
        segs_in: 8,
    };
    check(&ours, &theirs, &ours).unwrap();
    let with = |f: fn(&mut TcpCounters)| {
        let mut t = theirs;
        f(&mut t);
        check(&ours, &t, &ours)
    };
    assert_eq!(
        with(|t| t.bytes_received = 121),
        Err(Mismatch::ReceivedUnsent)
    );
    assert_eq!(
        with(|t| t.bytes_received = 99),
        Err(Mismatch::MissingDelivered)
    );
    assert_eq!(
        with(|t| t.bytes_sent = 8),
        Err(Mismatch::ReceivedUnsentByCaller)
    );
    assert_eq!(with(|t| t.bytes_sent = 9), Ok(()), "the caller's FIN");
    assert_eq!(with(|t| t.bytes_acked = 11), Ok(()), "the caller's SYN");
    assert_eq!(with(|t| t.bytes_acked = 12), Err(Mismatch::AckedUnreceived));
    assert_eq!(
        with(|t| t.segs_in = 8 + SEGMENT_SLACK + 1),
        Err(Mismatch::Segments)
    );
    assert_eq!(with(|t| t.segs_out = 0), Err(Mismatch::Segments));
}

/// `job.watch`: the check is repeated while the connection streams; a connection that stops
/// matching the caller's socket fails its next write.
#[tokio::test]
async fn a_long_connection_is_checked_again_while_it_streams() {
    use tokio::io::AsyncWriteExt;
    let (mut c, s) = pair();
    c.write_all(b"job.watch x\n").unwrap();
    s.set_nonblocking(true).unwrap();
    let mut s = tokio::net::TcpStream::from_std(s).unwrap();
    let mut buf = [0u8; 12];
    tokio::io::AsyncReadExt::read_exact(&mut s, &mut buf)
        .await
        .unwrap();
    let genuine = against(&c);
    let mut w = Rechecked::new(&mut s, &genuine, std::time::Duration::ZERO);
    w.write_all(b"output\n").await.unwrap();
    read_n(&mut c, 7);
    w.write_all(b"more\n").await.unwrap();
    read_n(&mut c, 5);
    let (mut victim, mut victim_srv) = pair();
    victim.write_all(b"x\n").unwrap();
    read_n(&mut victim_srv, 2);
    victim_srv.write_all(&[b'y'; 100]).unwrap();
    read_n(&mut victim, 100);
    let other = against(&victim);
    let mut w = Rechecked::new(&mut s, &other, std::time::Duration::ZERO);
    let err = w.write_all(b"output\n").await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
}
