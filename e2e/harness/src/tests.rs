//! Start-up retried when a port chosen for it is taken (needs the harness binaries, like the
//! integration tests; `MEDIACHAIN_SKIP_KUBE=1` skips).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, TcpListener};

use super::{record_skip, skip_requested, ApiServer, Binaries, Options, SKIP_ENV};
use crate::process::free_port;

#[tokio::test]
async fn a_port_taken_during_start_up_is_retried_on_new_ports() {
    if skip_requested() {
        record_skip(&format!(
            "{SKIP_ENV} is set, no real kube-apiserver started"
        ));
        return;
    }
    let bins = Binaries::from_env().unwrap_or_else(|e| panic!("{e}"));
    // Another process holds the port the first attempt gives kube-apiserver.
    let squatter = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let mut picks = 0;
    let server = ApiServer::start_on_ports(bins, Options::default(), || {
        picks += 1;
        let api = if picks == 1 { taken } else { free_port()? };
        Ok([free_port()?, free_port()?, api])
    })
    .await
    .unwrap_or_else(|e| panic!("start-up was not retried on new ports: {e}"));
    assert_eq!(picks, 2, "one attempt on the taken port, one on new ports");
    assert_ne!(server.url(), format!("https://127.0.0.1:{taken}"));
    drop(squatter);
}
