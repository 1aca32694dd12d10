//! A TCP proxy that can be told to fail, to test how Berth behaves when a service it depends on
//! (the S3 service) goes away or stops answering. It forwards bytes untouched, so signed requests
//! stay valid.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward them.
    None,
    /// Close every connection at once (the service is down).
    Refuse,
    /// Accept connections and never answer (the service hangs).
    Stall,
}

/// A proxy on 127.0.0.1 in front of `upstream`. Changing the fault drops the connections open.
pub struct FaultyProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (fault, watching) = watch::channel(Fault::None);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                let now = *watching.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Fault::Refuse => drop(client),
                        Fault::Stall => {
                            // Hold the connection, unread, until the fault changes.
                            let _ = watching.changed().await;
                            drop(client);
                        }
                        Fault::None => {
                            let Ok(mut server) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            let mut client = client;
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = watching.changed() => {}
                            }
                        }
                    }
                });
            }
        });
        FaultyProxy { addr, fault, task }
    }

    /// The proxy's `http://` URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes what it does from now on.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
