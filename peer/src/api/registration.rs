//! Client registration: `GET /v1/info`, `GET /v1/registration/challenge` and
//! `POST /v1/registration`, which answers a valid proof of work with a Level-2 certificate
//! chain signed by this peer. The peer keeps no state per challenge, and a challenge any peer
//! of the network issued is accepted (see `node::registration`).

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::Filter;

use super::offload::Lane;
use super::origin;
use super::problem::{answer, ApiError};
use super::ratelimit::{self, RateLimiter};
use super::{body, json, with, Api};
use crate::client::wire::{Challenge, Info, Registration, RegistrationRequest};
use crate::node::registration::{RegistrationError, CHALLENGE_TTL};
use crate::time;
use crate::trust::{PowStamp, PublicKey};

/// The registration routes.
pub fn routes(api: Api) -> BoxedFilter<(warp::reply::Response,)> {
    let info = warp::path!("v1" / "info")
        .and(warp::get())
        .and(with(api.clone()))
        .map(|api: Api| json(StatusCode::OK, &info_of(&api)));
    let challenge = warp::path!("v1" / "registration" / "challenge")
        .and(warp::get())
        .and(with(api.clone()))
        .map(|api: Api| {
            let registrar = api.node.registrar();
            json(
                StatusCode::OK,
                &Challenge {
                    challenge: hex::encode(registrar.challenge(time::now())),
                    bits: registrar.bits(),
                    expires_in: CHALLENGE_TTL,
                },
            )
        });
    let limiter = Arc::new(RateLimiter::new(
        api.config.registration_rate,
        api.config.registration_burst,
    ));
    let trusted = Arc::new(api.config.trusted_proxies.clone());
    let register = warp::path!("v1" / "registration")
        .and(warp::post())
        .and(ratelimit::filter(limiter, origin::client(trusted)))
        .and(with(api.clone()))
        .and(body(&api, api.config.max_body_bytes))
        .and_then(|api: Api, body| async move { answer(register(api, body).await) });
    info.or(challenge).unify().or(register).unify().boxed()
}

/// What `/v1/info` says.
pub fn info_of(api: &Api) -> Info {
    let rules = api.node.rules();
    Info {
        network: api.node.params().network.clone(),
        peer: api.node.public_key().to_string(),
        genesis: api.node.genesis().to_string(),
        registration_pow_bits: api.node.registrar().bits(),
        transaction_pow_bits: rules.tx_pow_bits,
        max_object_size: api.node.store().max_object_size(),
        max_entries_per_transaction: rules.max_entries_per_tx,
    }
}

async fn register(
    api: Api,
    body: Result<Vec<u8>, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let request: RegistrationRequest = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::bad_request(
            "malformed-body",
            format!("expected {{client, challenge, pow: {{bits, nonce}}}}: {e}"),
        )
    })?;
    let client: PublicKey = request
        .client
        .parse()
        .map_err(|e| ApiError::bad_request("invalid-key", format!("client: {e}")))?;
    let challenge = hex::decode(&request.challenge).map_err(|e| {
        ApiError::bad_request("invalid-challenge", format!("challenge must be hex: {e}"))
    })?;
    let stamp = PowStamp {
        bits: request.pow.bits,
        nonce: request.pow.nonce,
    };
    let now = time::now();
    let outcome = api
        .offload
        .run(Lane::Write, {
            let api = api.clone();
            move || {
                Ok(api
                    .node
                    .registrar()
                    .register(client, &challenge, &stamp, now, |k| api.node.is_peer(k)))
            }
        })
        .await?;
    match outcome {
        Ok(chain) => {
            let not_after = chain.leaf().map_or(0, |c| c.body.not_after);
            Ok(json(
                StatusCode::CREATED,
                &Registration {
                    client: client.to_string(),
                    issuer: api.node.public_key().to_string(),
                    level: 2,
                    not_after,
                    certificate: chain.to_pem(),
                },
            ))
        }
        Err(error) => {
            let (status, slug) = match error {
                RegistrationError::ForeignChallenge => (StatusCode::FORBIDDEN, "foreign-challenge"),
                RegistrationError::StaleChallenge => (StatusCode::FORBIDDEN, "stale-challenge"),
                RegistrationError::ProofOfWork(_) => (StatusCode::FORBIDDEN, "proof-of-work"),
                RegistrationError::SpentChallenge => (StatusCode::CONFLICT, "spent-challenge"),
                RegistrationError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            };
            api.metrics.reject("registration", slug);
            let problem = ApiError::new(status, slug, error.to_string());
            Err(if status == StatusCode::SERVICE_UNAVAILABLE {
                problem.retry_after(CHALLENGE_TTL)
            } else {
                problem
            })
        }
    }
}
