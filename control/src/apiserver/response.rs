//! Turning results into HTTP responses: JSON bodies, `Status` errors, warnings.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use skiff_api::status::ApiError;

/// An [`ApiError`] as an HTTP response: the `Status` object with its code.
#[derive(Debug)]
pub struct ErrorResponse(pub ApiError);

impl From<ApiError> for ErrorResponse {
    fn from(e: ApiError) -> Self {
        ErrorResponse(e)
    }
}

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json(code, &self.0.to_status())
    }
}

/// `Result` of a handler.
pub type HandlerResult = Result<Response, ErrorResponse>;

/// A JSON response.
pub fn json(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON response with `Warning` headers (`299 - "message"`), as Kubernetes
/// sends for unknown fields under `fieldValidation=Warn`.
pub fn json_with_warnings(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = json(code, body);
    for warning in warnings {
        let text = format!("299 - {:?}", warning);
        if let Ok(v) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, v);
        }
    }
    response
}
