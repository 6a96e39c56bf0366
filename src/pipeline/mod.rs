//! Workflows that span stages: where a sweep's data comes from, collecting run stores and
//! MLflow runs, publishing then mirroring, and the retrain pipeline. Stages never import
//! this module; it imports them.

pub mod collect;
pub mod experiment;
pub mod promote;
pub mod publish;
pub mod retrain;
pub mod source;
pub mod threshold;
