#![doc = include_str!("../README.md")]

mod account;
mod arn;
mod secret;
mod time;

pub use account::{AccountId, InvalidAccountId};
pub use arn::{Arn, InvalidArn};
pub use secret::{Secret, constant_time_eq};
pub use time::{Clock, FixedClock, SystemClock, Timestamp, days_from_civil};
