//! The one place where the API's errors become gRPC statuses: the same message as the REST
//! answer, with the status code that matches its HTTP status.

use axum::http::StatusCode;
use tonic::{Code, Status};

use crate::api::response::ApiError;

/// The gRPC code for an HTTP status of an [`ApiError`].
pub fn code_of(status: StatusCode) -> Code {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Code::InvalidArgument,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::AlreadyExists,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::PRECONDITION_FAILED => Code::FailedPrecondition,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
        _ => Code::Internal,
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        let mut status = Status::new(code_of(e.status), e.message);
        if let Some(secs) = e.retry_after {
            status.metadata_mut().insert("retry-after", secs.into());
        }
        status
    }
}

/// A malformed request: INVALID_ARGUMENT with Qdrant's "Bad request" wording.
pub fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Bad request: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_matching_codes() {
        assert_eq!(code_of(StatusCode::BAD_REQUEST), Code::InvalidArgument);
        assert_eq!(code_of(StatusCode::NOT_FOUND), Code::NotFound);
        assert_eq!(code_of(StatusCode::CONFLICT), Code::AlreadyExists);
        assert_eq!(code_of(StatusCode::FORBIDDEN), Code::PermissionDenied);
        assert_eq!(code_of(StatusCode::UNAUTHORIZED), Code::Unauthenticated);
        assert_eq!(code_of(StatusCode::PAYLOAD_TOO_LARGE), Code::ResourceExhausted);
        assert_eq!(code_of(StatusCode::SERVICE_UNAVAILABLE), Code::Unavailable);
        assert_eq!(code_of(StatusCode::INTERNAL_SERVER_ERROR), Code::Internal);
    }

    #[test]
    fn status_keeps_the_message() {
        let s: Status = ApiError::not_found("Not found: Collection `x` doesn't exist!").into();
        assert_eq!((s.code(), s.message()), (Code::NotFound, "Not found: Collection `x` doesn't exist!"));
    }
}
