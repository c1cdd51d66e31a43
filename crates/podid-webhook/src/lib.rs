#![doc = include_str!("../README.md")]

mod mutate;
pub mod review;

pub use mutate::{
    Config, IRSA_MOUNT_PATH, IRSA_VOLUME, Mutation, POD_IDENTITY_AUDIENCE, POD_IDENTITY_LABEL,
    POD_IDENTITY_MOUNT_PATH, POD_IDENTITY_TOKEN_FILE, POD_IDENTITY_URI, POD_IDENTITY_VOLUME,
    ServiceAccount, apply, mutate,
};
