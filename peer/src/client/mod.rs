//! The HTTP client of the peer API: what the `mediachain` CLI and applications use to register,
//! write objects, submit transactions and await their confirmation.
//!
//! [`wire`] holds the JSON documents shared with the server. [`Client`] (feature `client`) wraps
//! reqwest, retrying what the peer refuses for now ([`RetryPolicy`]); the view-update stream is
//! parsed with `eventsource-stream`. The client never trusts the peer with its key:
//! transactions are signed and proven locally.

pub mod wire;

#[cfg(feature = "client")]
mod events;
#[cfg(feature = "client")]
mod http;
#[cfg(feature = "client")]
mod registration;
#[cfg(feature = "client")]
mod retry;

#[cfg(feature = "client")]
pub use events::{Confirmation, ViewUpdate};
#[cfg(feature = "client")]
pub use http::{Client, ClientError};
#[cfg(feature = "client")]
pub use registration::registration_resource;
#[cfg(feature = "client")]
pub use retry::RetryPolicy;
