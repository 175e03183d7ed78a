//! Tables generated from Kubernetes' own sources, so that they match it field
//! for field. Do not edit them: their generators are in `api/generators/`,
//! with the sources and versions each reads.

pub(crate) mod patch_strategies;
pub(crate) mod protobuf_schema;
