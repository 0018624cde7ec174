//! Registration: a client key certified by a peer (`GET /v1/registration/challenge`, then
//! `POST /v1/registration` with the proof of work solved locally). The `POST` is never retried
//! (it spends its challenge); the challenge's `GET` is, as every read.

use super::http::{accepted, decode, Client, ClientError, Result};
use super::wire::{Challenge, Pow, Registration, RegistrationRequest};
use crate::trust::{pow, Chain, SecretKey};

impl Client {
    /// `GET /v1/registration/challenge`.
    pub async fn challenge(&self) -> Result<Challenge> {
        self.get_json("/v1/registration/challenge").await
    }

    /// Registers `key`: fetches a challenge, solves its proof of work and returns the Level-2
    /// chain the peer signed.
    pub async fn register(&self, key: &SecretKey) -> Result<(Chain, Registration)> {
        let challenge = self.challenge().await?;
        self.register_with(key, challenge).await
    }

    /// Registers `key` answering `challenge`, which any peer of the network may have issued.
    pub async fn register_with(
        &self,
        key: &SecretKey,
        challenge: Challenge,
    ) -> Result<(Chain, Registration)> {
        let bytes = hex::decode(&challenge.challenge)
            .map_err(|e| ClientError::Protocol(format!("challenge is not hex: {e}")))?;
        let resource = registration_resource(&key.public(), &bytes);
        let bits = challenge.bits;
        let stamp = tokio::task::spawn_blocking(move || {
            pow::solve(pow::Purpose::Registration, &resource, bits)
        })
        .await
        .map_err(|e| ClientError::Protocol(e.to_string()))??;
        let request = RegistrationRequest {
            client: key.public().to_string(),
            challenge: challenge.challenge,
            pow: Pow {
                bits: stamp.bits,
                nonce: stamp.nonce,
            },
        };
        let url = self.url("/v1/registration");
        // Never retried: the request spends its challenge.
        let response = self.send_once(self.http.post(&url).json(&request), &url);
        let registration: Registration = decode(accepted(response.await?).await?).await?;
        let chain = Chain::from_pem(&registration.certificate)
            .map_err(|e| ClientError::Protocol(format!("certificate: {e}")))?;
        Ok((chain, registration))
    }
}

/// What a registration proof of work covers: the client key's 32 bytes, then the challenge
/// (the peer's `Registrar::resource`).
pub fn registration_resource(client: &crate::trust::PublicKey, challenge: &[u8]) -> Vec<u8> {
    let mut resource = client.as_bytes().to_vec();
    resource.extend_from_slice(challenge);
    resource
}
