//! Who may call what. Three credentials, three roles (docs/security.md):
//! workers lease and report, users submit, steer and read, viewers only
//! read. A fourth, shared token grants all three, for a single researcher
//! who runs everything (`widesweep run`, or `serve --token-file`).
//!
//! The interceptor matches the bearer token against every configured
//! credential (each comparison in constant time, all of them always made)
//! and attaches the [`Grant`] it earned to the request; each rpc then asks
//! for the permission it needs with [`require`]. A coordinator started with
//! no credential at all grants everything (loopback, or `--insecure`).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

/// What a call may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Read sweeps, results and workers (tables, exports, the dashboard).
    Read,
    /// Submit, pause, resume and cancel sweeps.
    Steer,
    /// Register as a worker, lease jobs, report and store checkpoints.
    Work,
}

/// The roles a credential stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Viewer,
    User,
    Worker,
    /// The shared token: every permission.
    Shared,
}

impl Role {
    pub fn allows(self, permission: Permission) -> bool {
        matches!(
            (self, permission),
            (Role::Shared, _)
                | (Role::User, Permission::Read | Permission::Steer)
                | (Role::Viewer, Permission::Read)
                | (Role::Worker, Permission::Work)
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::User => "user",
            Role::Worker => "worker",
            Role::Shared => "shared",
        }
    }
}

/// The secrets a coordinator accepts, one per role; `None` leaves the role
/// without a credential of its own.
#[derive(Clone, Default)]
pub struct Credentials {
    pub shared: Option<String>,
    pub user: Option<String>,
    pub worker: Option<String>,
    pub viewer: Option<String>,
}

impl Credentials {
    /// Whether any credential is configured (otherwise every call passes).
    pub fn any(&self) -> bool {
        self.roles().next().is_some()
    }

    fn roles(&self) -> impl Iterator<Item = (Role, &str)> {
        [
            (Role::Shared, &self.shared),
            (Role::User, &self.user),
            (Role::Worker, &self.worker),
            (Role::Viewer, &self.viewer),
        ]
        .into_iter()
        .filter_map(|(role, token)| token.as_deref().map(|t| (role, t)))
    }
}

/// Never printed: these are secrets.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles: Vec<&str> = self.roles().map(|(role, _)| role.name()).collect();
        f.debug_struct("Credentials").field("roles", &roles).finish()
    }
}

/// The role a request's credential earned, attached by [`Authenticate`].
#[derive(Clone, Copy, Debug)]
pub struct Grant(pub Role);

/// The configured tokens by role, matched in constant time: what both the
/// gRPC interceptor and the dashboard check a credential against.
#[derive(Clone)]
pub(crate) struct TokenTable(Arc<[(Role, Vec<u8>)]>);

impl TokenTable {
    pub(crate) fn new(credentials: &Credentials) -> Self {
        Self(credentials.roles().map(|(role, token)| (role, token.as_bytes().to_vec())).collect())
    }

    /// No credential configured: every caller passes.
    pub(crate) fn is_open(&self) -> bool {
        self.0.is_empty()
    }

    /// The role whose token `given` is. Every credential is compared, so the
    /// time taken does not say which role (if any) a guess came close to.
    pub(crate) fn role_of(&self, given: &[u8]) -> Option<Role> {
        let mut matched = None;
        for (role, expected) in self.0.iter() {
            if constant_time_eq(given, expected) {
                matched = Some(*role);
            }
        }
        matched
    }
}

/// Refuses calls without a known bearer token and tags the others with
/// their [`Grant`].
#[derive(Clone)]
pub struct Authenticate {
    tokens: TokenTable,
}

impl Authenticate {
    pub fn new(credentials: &Credentials) -> Self {
        Self { tokens: TokenTable::new(credentials) }
    }
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if self.tokens.is_open() {
            request.extensions_mut().insert(Grant(Role::Shared));
            return Ok(request);
        }
        let given = request.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        match given.strip_prefix(b"Bearer ").and_then(|token| self.tokens.role_of(token)) {
            Some(role) => {
                request.extensions_mut().insert(Grant(role));
                Ok(request)
            }
            None => Err(Status::unauthenticated(
                "missing or wrong bearer token (set WIDESWEEP_TOKEN or pass --token-file with the credential of \
                 your role: user, worker or viewer)",
            )),
        }
    }
}

/// Refuses the call unless its credential carries `permission`; otherwise
/// says which role the credential has.
pub fn require<T>(request: &Request<T>, permission: Permission) -> Result<Role, Status> {
    let role = match request.extensions().get::<Grant>() {
        Some(Grant(role)) => *role,
        // Only reachable when a service is served without the interceptor,
        // which `serve` never does: refuse rather than guess.
        None => return Err(Status::unauthenticated("the request carries no checked credential")),
    };
    if role.allows(permission) {
        return Ok(role);
    }
    let needed = match permission {
        Permission::Read => "a viewer, user or shared",
        Permission::Steer => "the user or shared",
        Permission::Work => "the worker or shared",
    };
    Err(Status::permission_denied(format!(
        "the {} credential may not do this: it needs {needed} credential",
        role.name()
    )))
}

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(auth: &mut Authenticate, header: Option<&str>) -> Result<Request<()>, Status> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request.metadata_mut().insert("authorization", header.parse().unwrap());
        }
        auth.call(request)
    }

    #[test]
    fn each_credential_earns_its_role_and_only_its_permissions() {
        let credentials = Credentials {
            shared: None,
            user: Some("user-secret".into()),
            worker: Some("worker-secret".into()),
            viewer: Some("viewer-secret".into()),
        };
        let mut auth = Authenticate::new(&credentials);
        assert_eq!(call(&mut auth, None).unwrap_err().code(), tonic::Code::Unauthenticated);
        assert_eq!(call(&mut auth, Some("Bearer user-secreT")).unwrap_err().code(), tonic::Code::Unauthenticated);
        let user = call(&mut auth, Some("Bearer user-secret")).unwrap();
        let worker = call(&mut auth, Some("Bearer worker-secret")).unwrap();
        let viewer = call(&mut auth, Some("Bearer viewer-secret")).unwrap();
        for (request, read, steer, work) in
            [(&user, true, true, false), (&worker, false, false, true), (&viewer, true, false, false)]
        {
            assert_eq!(require(request, Permission::Read).is_ok(), read);
            assert_eq!(require(request, Permission::Steer).is_ok(), steer);
            assert_eq!(require(request, Permission::Work).is_ok(), work);
        }
        let denied = require(&worker, Permission::Steer).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("worker credential"), "{}", denied.message());
    }

    #[test]
    fn the_shared_token_and_an_open_server_grant_everything() {
        let mut shared = Authenticate::new(&Credentials { shared: Some("s3cret".into()), ..Credentials::default() });
        let request = call(&mut shared, Some("Bearer s3cret")).unwrap();
        for permission in [Permission::Read, Permission::Steer, Permission::Work] {
            assert!(require(&request, permission).is_ok());
        }
        let mut open = Authenticate::new(&Credentials::default());
        let request = call(&mut open, None).unwrap();
        assert!(require(&request, Permission::Steer).is_ok());
        // A request that never met the interceptor is refused.
        assert!(require(&Request::new(()), Permission::Read).is_err());
    }
}
