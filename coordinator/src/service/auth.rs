//! The bearer-token check in front of each service: `authorization: Bearer <token>` metadata, compared in
//! constant time. Workers and admins hold different tokens, so a worker cannot create runs.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use sensgrid_client::AUTHORIZATION;

/// Lets a call through only with the service's token.
///
/// Both sides are hashed before the comparison, so it takes the same time whatever the presented value's
/// length or how much of it matches: the comparison leaks nothing about the token.
#[derive(Clone)]
pub struct TokenCheck {
    service: &'static str,
    expected: [u8; 32],
}

impl TokenCheck {
    /// The check of `service` (named in the refusal) against `token`.
    pub fn new(service: &'static str, token: &str) -> Self {
        Self {
            service,
            expected: Sha256::digest(format!("Bearer {token}")).into(),
        }
    }

    /// Whether `presented` (an `authorization` value) is exactly `Bearer <token>`, compared in constant time.
    pub fn admits(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        bool::from(presented.ct_eq(&self.expected))
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(presented) = request.metadata().get(AUTHORIZATION) else {
            return Err(Status::unauthenticated(format!(
                "{}: no '{AUTHORIZATION}' metadata; expected 'Bearer <token>'",
                self.service
            )));
        };
        if self.admits(presented.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(format!(
                "{}: the bearer token is not this service's",
                self.service
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(check: &mut TokenCheck, header: Option<&str>) -> Result<(), Status> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request.metadata_mut().insert(AUTHORIZATION, header.parse().unwrap());
        }
        check.call(request).map(drop)
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mut check = TokenCheck::new("WorkerService", "s3cret");
        assert!(call(&mut check, Some("Bearer s3cret")).is_ok());
        for wrong in [
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("s3cret"),
            Some("bearer s3cret"),
        ] {
            let status = call(&mut check, wrong).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{wrong:?}");
            assert_eq!(
                status.message(),
                "WorkerService: the bearer token is not this service's"
            );
        }
        let status = call(&mut check, None).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(
            status.message().contains("no 'authorization' metadata"),
            "{}",
            status.message()
        );
    }
}
