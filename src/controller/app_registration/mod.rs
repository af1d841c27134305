//! The AzureAppRegistration controller: observe (Graph, the Secret) → plan (pure: [`desired`],
//! [`rotation`], [`credential`]) → act (Graph writes, Secret, status).
pub mod credential;
pub mod desired;
pub mod reconcile;
pub mod rotation;
pub mod secret;
