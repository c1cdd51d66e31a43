#![doc = include_str!("../README.md")]

mod canonical;
mod error;
mod query;
mod sign;
mod verify;

pub use canonical::{path_segments, percent_decoded, uri_encoded};
pub use error::{SigV4Error, SigV4ErrorKind};
pub use query::{QueryError, QueryParams, query_params, query_params_with_lists};
pub use sign::{Credentials, JsonRequest, presign, sign, sign_json};
pub use verify::{Form, Scope, SignedRequest, parse};

/// The parts of an HTTP request that SigV4 covers.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    /// The method, such as `POST`.
    pub method: &'a str,
    /// The path as sent on the wire (percent-encoded), such as `/`.
    pub path: &'a str,
    /// The query string as sent on the wire, without the `?`.
    pub query: &'a str,
    /// The headers, in the order received; names in any case; a name may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

impl<'a> HttpRequest<'a> {
    /// The values of header `name` (any case), in order.
    pub fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// The longest a presigned request may be valid: seven days.
pub const MAX_PRESIGN_EXPIRY_SECS: u64 = 604_800;

/// How far a request's time may be from the server's: 15 minutes.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
