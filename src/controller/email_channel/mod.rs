//! The EmailChannel controller: child AzureAppRegistration, Exchange mailbox, Connect asset.
pub mod desired;
pub mod reconcile;
