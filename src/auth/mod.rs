//! Credentials: bearer tokens ([`token`]), password hashes
//! ([`password`]), and the caller of a request ([`caller`]). Everything is
//! re-exported here, so `crate::auth::X` names each item.

pub mod caller;
pub mod password;
pub mod token;

pub use caller::{Actor, Caller, KeyCaller, Principal, RequestMeta};
pub use password::{
    HASHING_NICENESS, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, PasswordHasherPool, validate_new_password,
};
pub use token::{
    API_KEY_LEN, API_KEY_PREFIX, BAD_API_KEY, Credential, DISPLAY_PREFIX_LEN, NewToken, TOKEN_LEN,
    TOKEN_PREFIX, bearer_credential, bearer_token, generate_token, hash_token,
    is_well_formed_api_key, is_well_formed_token, mask_token,
};
