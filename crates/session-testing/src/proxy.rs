//! A TCP proxy in front of a real server that loses one answer: it passes
//! everything through until a client sends bytes containing a trigger,
//! forwards those, then closes that connection without forwarding what
//! the server answers. The command ran; its client never hears of it, as
//! when a server dies right after doing a write, or a network drops the
//! reply.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// How long the proxy lets the server work on the trigger before it cuts
/// the connection: enough for a command to run on a local server.
const SERVER_TIME: Duration = Duration::from_millis(200);

/// A proxy on a free loopback port that cuts the first connection whose
/// client sends the trigger, after forwarding it (see the module's
/// documentation). Later connections, and everything before the trigger,
/// pass through. It runs on threads of its own until the process ends.
///
/// ```no_run
/// use session_testing::{AnswerLosingProxy, RedisServer};
///
/// let server = RedisServer::start();
/// let proxy = AnswerLosingProxy::start(server.port(), b"}:moved");
/// // Point the client at proxy.url(); a command naming a key that ends
/// // in `}:moved` runs, and its connection closes before the answer.
/// assert_eq!(proxy.cuts(), 0);
/// ```
#[derive(Debug)]
pub struct AnswerLosingProxy {
    port: u16,
    cuts: Arc<AtomicUsize>,
}

impl AnswerLosingProxy {
    /// Starts a proxy to the server on loopback port `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    #[must_use]
    pub fn start(upstream: u16, trigger: &[u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(true));
        let trigger = trigger.to_vec();
        let counted = Arc::clone(&cuts);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let connection = Connection {
                    trigger: trigger.clone(),
                    armed: Arc::clone(&armed),
                    cuts: Arc::clone(&counted),
                    cutting: Arc::new(AtomicBool::new(false)),
                };
                // A connection whose streams cannot be cloned is dropped:
                // its client sees it closed and connects again.
                let _ = connection.relay(client, server);
            }
        });
        AnswerLosingProxy { port, cuts }
    }

    /// The port clients connect to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL of the proxy.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many connections it cut: 0 before the trigger, 1 after.
    #[must_use]
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

/// One client's connection through the proxy.
struct Connection {
    trigger: Vec<u8>,
    /// Until a connection takes it, the next trigger cuts.
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    /// Set once this connection's trigger went to the server: nothing the
    /// server sends from then on reaches the client.
    cutting: Arc<AtomicBool>,
}

impl Connection {
    fn relay(self, client: TcpStream, server: TcpStream) -> io::Result<()> {
        let (client_reader, server_writer) = (client.try_clone()?, server.try_clone()?);
        let cutting = Arc::clone(&self.cutting);
        thread::spawn(move || answers(server, client, &cutting));
        thread::spawn(move || self.requests(client_reader, server_writer));
        Ok(())
    }

    /// Client to server, until the trigger (forwarded) or either end
    /// closes.
    fn requests(self, mut client: TcpStream, mut server: TcpStream) {
        let mut buffer = [0; 16 * 1024];
        loop {
            let read = match client.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            let chunk = &buffer[..read];
            let cut = contains(chunk, &self.trigger) && self.armed.swap(false, Ordering::SeqCst);
            if cut {
                self.cutting.store(true, Ordering::SeqCst);
                self.cuts.fetch_add(1, Ordering::SeqCst);
            }
            if server.write_all(chunk).is_err() {
                break;
            }
            if cut {
                thread::sleep(SERVER_TIME);
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = server.shutdown(Shutdown::Both);
    }
}

/// Server to client, until either end closes; once the connection is
/// being cut, what the server sends is dropped (the other direction closes
/// both ends when the server has had its time).
fn answers(mut server: TcpStream, mut client: TcpStream, cutting: &AtomicBool) {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = match server.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if cutting.load(Ordering::SeqCst) {
            continue;
        }
        if client.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}
