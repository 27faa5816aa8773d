//! switchboard itself, in process on a loopback port, for the integration
//! tests: started from a config, stopped and joined on drop.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use switchboard::config::Config;
use switchboard::reactor::{Handle, Server};

use crate::support::{StubServer, WsClient};

pub const WS_PATH: &str = "/xmpp-websocket";

/// A switchboard serving on a loopback port until dropped.
pub struct Switchboard {
    pub addr: SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl Switchboard {
    /// Serve `config`, whatever its `listen`, on a free loopback port.
    pub fn start(mut config: Config) -> Switchboard {
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        let mut server = Server::bind(&config).expect("bind");
        let addr = server.local_addr();
        let handle = server.handle();
        let thread = std::thread::spawn(move || server.run().expect("reactor"));
        Switchboard {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// A WebSocket client upgraded with the `xmpp` subprotocol.
    pub fn ws(&self) -> WsClient {
        WsClient::connect(self.addr, WS_PATH, &["xmpp"]).expect("websocket upgrade")
    }

    /// Drain as on SIGTERM: every client is told, then the server stops.
    pub fn drain(&self) {
        self.handle.drain();
    }
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The test config with `stub`'s domain routed to it (the only route), its
/// CA trusted when it has one. The stub stands for a server elsewhere: its
/// certificate is verified even though it listens on loopback.
pub fn config_for(stub: &StubServer) -> Config {
    let mut config = Config::for_tests();
    config.backend.routes.clear();
    config
        .backend
        .routes
        .insert(stub.domain().to_string(), stub.addr().to_string().into());
    if let Some(ca) = stub.ca_file() {
        config.backend.ca_file = ca.to_path_buf();
    }
    config.backend.verify_loopback = true;
    config
}
