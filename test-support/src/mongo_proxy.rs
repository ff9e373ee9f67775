//! A fault-injecting MongoDB wire proxy: sits between a client and a test server (nx-27017),
//! forwards every message, and on chosen commands answers what a real replica set answers
//! in a failover, which a single-process test server never does: a command error such as
//! NotWritablePrimary (with or without the `RetryableWriteError` label), a write-concern error
//! on an applied write, or a connection dropped before or after the server saw the command.
//! It also records every command it forwarded, so tests can pin which command a store method
//! sends (an `insert` versus an `update` upsert).
//!
//! Only OP_MSG (opcode 2013, what every current driver sends) is understood; anything else
//! (and compressed traffic, which the test clients do not negotiate) passes through untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use mongodb::bson::{doc, Bson, Document};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const OP_MSG: i32 = 2013;
/// Largest message accepted (MongoDB's maxMessageSizeBytes).
const MAX_MESSAGE: usize = 48_000_000;

/// What to do to a command that matches a rule.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `{ok: 0, code, codeName, errmsg, errorLabels}` instead of forwarding.
    CommandError {
        /// Server error code, e.g. 112 (WriteConflict).
        code: i32,
        /// `codeName` for the code.
        name: &'static str,
        /// `errorLabels`, e.g. `TransientTransactionError`.
        labels: Vec<&'static str>,
    },
    /// Forward, and add `writeConcernError: {code, codeName, errmsg}` to the server's reply
    /// (the write was applied, its majority confirmation timed out).
    WriteConcernError {
        /// Server error code, e.g. 64 (WriteConcernFailed).
        code: i32,
        /// `codeName` for the code.
        name: &'static str,
    },
    /// Close the connection before forwarding (the server never sees the command).
    DropBefore,
    /// Forward, then close the connection instead of delivering the reply (applied, unknown
    /// to the client).
    DropAfter,
}

impl Fault {
    /// NotWritablePrimary (10107), as a primary that just stepped down answers a write.
    pub fn not_writable_primary() -> Fault {
        Fault::CommandError {
            code: 10107,
            name: "NotWritablePrimary",
            labels: vec!["RetryableWriteError"],
        }
    }

    /// A write concern timeout (64): applied on the primary, majority not confirmed.
    pub fn wtimeout() -> Fault {
        Fault::WriteConcernError {
            code: 64,
            name: "WriteConcernFailed",
        }
    }
}

struct Rule {
    command: String,
    collection: Option<String>,
    remaining: u32,
    fault: Fault,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    /// `(command, collection or "")` of every OP_MSG forwarded, in order.
    seen: Vec<(String, String)>,
    /// Commands whose whole body is kept (see [`FaultProxy::capture`]).
    capture: Vec<String>,
    /// Bodies of the captured commands, in order.
    captured: Vec<Document>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to the first host of `upstream_uri`
    /// (a `mongodb://host:port...` string).
    pub async fn start(upstream_uri: &str) -> FaultProxy {
        let rest = upstream_uri
            .split_once("://")
            .map_or(upstream_uri, |(_, r)| r);
        let host = rest
            .split(['/', '?', ','])
            .next()
            .and_then(|h| h.rsplit('@').next())
            .expect("upstream host")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&host).await else {
                    continue;
                };
                tokio::spawn(serve(client, server, Arc::clone(&state)));
            }
        });
        FaultProxy { addr, shared, task }
    }

    /// Connection string of the proxy (one host, pinned: the driver must not discover and
    /// bypass it).
    pub fn uri(&self) -> String {
        format!("mongodb://{}/?directConnection=true", self.addr)
    }

    /// The next `times` commands named `command` (on `collection`, if given) get `fault`.
    pub fn inject(&self, command: &str, collection: Option<&str>, times: u32, fault: Fault) {
        self.lock().rules.push(Rule {
            command: command.to_string(),
            collection: collection.map(str::to_string),
            remaining: times,
            fault,
        });
    }

    /// From now on, keeps the whole body of every command named `command` (for tests that
    /// pin the options a command carries).
    pub fn capture(&self, command: &str) {
        self.lock().capture.push(command.to_string());
    }

    /// Bodies of the captured commands so far, and forgets them.
    pub fn take_captured(&self) -> Vec<Document> {
        std::mem::take(&mut self.lock().captured)
    }

    /// Drops every rule not yet used up.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// `(command, collection)` of every command seen so far (collection `""` for commands
    /// on no collection), and forgets them.
    pub fn take_seen(&self) -> Vec<(String, String)> {
        std::mem::take(&mut self.lock().seen)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One OP_MSG (or other) message as read from the wire.
struct Message {
    bytes: Vec<u8>,
    request_id: i32,
    response_to: i32,
    op_code: i32,
}

async fn read_message(r: &mut OwnedReadHalf) -> Option<Message> {
    let mut header = [0u8; 16];
    r.read_exact(&mut header).await.ok()?;
    let field =
        |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let len = usize::try_from(field(0)).ok()?;
    if !(16..=MAX_MESSAGE).contains(&len) {
        return None;
    }
    let mut bytes = header.to_vec();
    bytes.resize(len, 0);
    r.read_exact(&mut bytes[16..]).await.ok()?;
    Some(Message {
        request_id: field(4),
        response_to: field(8),
        op_code: field(12),
        bytes,
    })
}

/// The body (section kind 0) of an OP_MSG.
fn body(m: &Message) -> Option<Document> {
    if m.op_code != OP_MSG || m.bytes.len() < 21 || m.bytes[20] != 0 {
        return None;
    }
    Document::from_reader(&m.bytes[21..]).ok()
}

/// An OP_MSG carrying `doc`, answering request `response_to`.
fn op_msg(response_to: i32, doc: &Document) -> Vec<u8> {
    let mut payload = Vec::new();
    doc.to_writer(&mut payload).expect("encode reply");
    let len = 16 + 4 + 1 + payload.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&i32::try_from(len).expect("reply size").to_le_bytes());
    out.extend_from_slice(&(response_to.wrapping_add(1_000_000)).to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&payload);
    out
}

/// What happens to the reply of a forwarded request.
enum Pending {
    AddWriteConcernError(i32, &'static str),
    Drop,
}

async fn serve(client: TcpStream, server: TcpStream, shared: Arc<Mutex<Shared>>) {
    let (mut from_client, to_client) = client.into_split();
    let (from_server, mut to_server) = server.into_split();
    let to_client = Arc::new(tokio::sync::Mutex::new(to_client));
    let pending: Arc<Mutex<HashMap<i32, Pending>>> = Arc::default();
    let back = tokio::spawn(replies(
        from_server,
        Arc::clone(&to_client),
        Arc::clone(&pending),
    ));
    while let Some(m) = read_message(&mut from_client).await {
        let fault = body(&m).and_then(|b| matching_fault(&shared, &b));
        match fault {
            Some(Fault::CommandError { code, name, labels }) => {
                let reply = doc! {
                    "ok": 0.0, "code": code, "codeName": name,
                    "errmsg": format!("injected {name}"), "errorLabels": labels,
                };
                let mut w = to_client.lock().await;
                if w.write_all(&op_msg(m.request_id, &reply)).await.is_err() {
                    break;
                }
                continue;
            }
            Some(Fault::DropBefore) => break,
            Some(Fault::WriteConcernError { code, name }) => {
                lock(&pending).insert(m.request_id, Pending::AddWriteConcernError(code, name));
            }
            Some(Fault::DropAfter) => {
                lock(&pending).insert(m.request_id, Pending::Drop);
            }
            None => {}
        }
        if to_server.write_all(&m.bytes).await.is_err() {
            break;
        }
    }
    back.abort();
    let _ = to_client.lock().await.shutdown().await;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records the command and returns the fault of the first rule it matches (using it up).
fn matching_fault(shared: &Mutex<Shared>, body: &Document) -> Option<Fault> {
    let (command, target) = body.iter().next()?;
    let collection = match target {
        Bson::String(s) => s.clone(),
        _ => String::new(),
    };
    let mut s = lock(shared);
    s.seen.push((command.clone(), collection.clone()));
    if s.capture.iter().any(|c| c.eq_ignore_ascii_case(command)) {
        s.captured.push(body.clone());
    }
    let rule = s.rules.iter_mut().find(|r| {
        r.remaining > 0
            && r.command.eq_ignore_ascii_case(command)
            && r.collection.as_ref().is_none_or(|c| *c == collection)
    })?;
    rule.remaining -= 1;
    Some(rule.fault.clone())
}

async fn replies(
    mut from_server: OwnedReadHalf,
    to_client: Arc<tokio::sync::Mutex<OwnedWriteHalf>>,
    pending: Arc<Mutex<HashMap<i32, Pending>>>,
) {
    while let Some(m) = read_message(&mut from_server).await {
        let action = lock(&pending).remove(&m.response_to);
        let bytes = match action {
            None => m.bytes,
            Some(Pending::Drop) => {
                let _ = to_client.lock().await.shutdown().await;
                return;
            }
            Some(Pending::AddWriteConcernError(code, name)) => match body(&m) {
                Some(mut reply) => {
                    reply.insert(
                        "writeConcernError",
                        doc! { "code": code, "codeName": name, "errmsg": format!("injected {name}") },
                    );
                    op_msg(m.response_to, &reply)
                }
                None => m.bytes,
            },
        };
        if to_client.lock().await.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = to_client.lock().await.shutdown().await;
}
