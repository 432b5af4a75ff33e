//! Write Discord bot handlers as AWS Lambda functions fed by shardline.
//!
//! # Layout
//!
//! Filled in by the lambda-bot issue (7).
