//! Problem documents (RFC 9457): every refusal of the API is an `application/problem+json` body
//! with a stable `type`, a human `detail` saying how to fix the request, and a `reason` label.
//!
//! Handlers return [`ApiError`]; warp's own rejections (unknown route, wrong method, bad query,
//! oversized body) are turned into the same documents by [`recover`]. Nothing here changes state.

use std::convert::Infallible;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::client::wire::{Problem, PROBLEM_JSON};

/// Base URI of problem types (each kind appends its slug).
pub const PROBLEM_BASE: &str = "https://mediachain.io/problems/";

/// A refused request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Slug of the problem type (also the `reason` label).
    pub slug: &'static str,
    /// What went wrong.
    pub detail: String,
    /// Seconds after which a retry may succeed (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A problem of kind `slug` with `status`.
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, detail)
    }

    /// 404: the thing named does not exist here.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 422: well-formed but refused.
    pub fn unprocessable(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, slug, detail)
    }

    /// 500: the peer failed (logged; the detail stays generic).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the peer failed to handle the request; see its logs",
        )
    }

    /// Adds a Retry-After.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn title(&self) -> String {
        self.status
            .canonical_reason()
            .unwrap_or("Error")
            .to_string()
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{}", self.slug),
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            reason: Some(self.slug.to_string()),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = Response::new(body.into());
        *response.status_mut() = self.status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a late body may still be on its way: never read it as a request.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl warp::reject::Reject for ApiError {}

/// The result of a handler: a reply or a problem, never a warp rejection (so the route that
/// matched answers, instead of warp trying the next one).
pub type Answer = Result<Response, Infallible>;

/// Turns a handler result into a response.
pub fn answer<T: Reply>(result: Result<T, ApiError>) -> Answer {
    Ok(match result {
        Ok(reply) => reply.into_response(),
        Err(error) => error.into_response(),
    })
}

/// Converts warp's rejections into problem documents.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route; the API is described at /v1/openapi.json")
    } else if let Some(e) = rejection.find::<InvalidQuery>() {
        ApiError::bad_request("invalid-query", e.to_string())
    } else if let Some(e) = rejection.find::<MissingHeader>() {
        ApiError::bad_request("missing-header", e.to_string())
    } else if let Some(e) = rejection.find::<InvalidHeader>() {
        ApiError::bad_request("invalid-header", e.to_string())
    } else if let Some(e) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::bad_request("malformed-body", e.to_string())
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "the request body is over the size limit",
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length-required",
            "send a Content-Length",
        )
    } else if let Some(e) = rejection.find::<UnsupportedMediaType>() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            e.to_string(),
        )
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "this route does not take that method; see /v1/openapi.json",
        )
    } else {
        ApiError::internal(format!("unhandled rejection: {rejection:?}"))
    };
    Ok(error.into_response())
}
