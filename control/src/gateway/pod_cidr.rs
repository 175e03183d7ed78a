//! Node IPAM, as Kubernetes' node-ipam controller with `--allocate-node-cidrs`:
//! every Node gets a `spec.podCIDR` out of the cluster's pod CIDR when it first
//! registers, and its node hands its pods addresses from it. A Wasm pod has no
//! network interface; its address is the identity Services' endpoints name
//! and the node proxies map back to the pod.
//!
//! Unlike Kubernetes' fixed `--node-cidr-mask-size`, a node's block is sized by
//! its pod capacity (twice its `pods`, at least a /24, at most a /16), so that
//! both a dense node (10,000 pods) and many small ones fit.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};
use skiff_api::json::Pointer as _;
use skiff_api::meta;
use skiff_api::resource::by_kind;
use skiff_api::status::{ApiError, Reason};

use super::nodes::FIELD_MANAGER;
use crate::informer::Informer;
use crate::registry::{Registry, Subresource, WriteOptions};

/// The cluster's pod CIDR: 10.128.0.0/9, clear of the Service CIDR (10.96.0.0/12).
pub const CLUSTER_CIDR: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(10, 128, 0, 0), 9) {
    Ok(net) => net,
    Err(_) => panic!("a valid constant CIDR"),
};

/// The prefix length of a block for a node with `pods` capacity.
pub fn prefix_for(pods: u64) -> u8 {
    let wanted = pods.saturating_mul(2).max(256);
    let bits = 64 - (wanted - 1).leading_zeros();
    (32 - bits.min(16)) as u8
}

/// The first block of `prefix` in `cluster` that overlaps none of `taken`.
pub fn first_free(cluster: Ipv4Net, taken: &[Ipv4Net], prefix: u8) -> Option<Ipv4Net> {
    if prefix < cluster.prefix_len() || prefix > 32 {
        return None;
    }
    let size = 1u64 << (32 - prefix);
    let mut ranges: Vec<(u64, u64)> = taken
        .iter()
        .map(|n| {
            (
                u64::from(u32::from(n.network())),
                u64::from(u32::from(n.broadcast())),
            )
        })
        .collect();
    ranges.sort_unstable();
    let end = u64::from(u32::from(cluster.broadcast()));
    let mut start = u64::from(u32::from(cluster.network()));
    for (lo, hi) in ranges {
        if hi < start {
            continue;
        }
        if lo > start + size - 1 {
            break; // The candidate ends before this block begins.
        }
        // Overlaps: the next aligned candidate after this block.
        start = (hi + 1).div_ceil(size) * size;
    }
    if start + size - 1 > end {
        return None;
    }
    Ipv4Net::new(Ipv4Addr::from(start as u32), prefix).ok()
}

/// Hands out pod CIDRs, one allocation at a time so that two nodes
/// registering together cannot take the same block. The blocks taken are kept
/// in memory, read once from the Node watch cache and then kept up to date
/// here: a read of every Node per join would cost N² as a cluster of N nodes
/// joins. A deleted node's block is released when the range runs out.
pub struct PodCidrs {
    nodes: Informer<Node>,
    /// Node -> its block; `None` until the first allocation reads the cache.
    blocks: tokio::sync::Mutex<Option<HashMap<String, Ipv4Net>>>,
}

impl PodCidrs {
    pub fn new(nodes: Informer<Node>) -> Self {
        PodCidrs {
            nodes,
            blocks: Default::default(),
        }
    }

    /// The Node's pod CIDR, allocated (and written to its `spec`) if it has
    /// none. `None` when the cluster CIDR is full: its pods then run without
    /// addresses, as Kubernetes' pods wait on a node whose CIDR is not
    /// allocated.
    pub async fn ensure(
        &self,
        registry: &Registry,
        node_name: &str,
    ) -> Result<Option<Ipv4Net>, ApiError> {
        let rt = by_kind("v1", "Node").ok_or_else(|| ApiError::internal("no Node kind"))?;
        let mut guard = self.blocks.lock().await;
        let node = registry.get(rt, "", node_name)?;
        if guard.is_none() {
            self.nodes.synced().await;
            let cached = self.nodes.list(None, |_| true);
            *guard = Some(
                cached
                    .iter()
                    .filter_map(|n| Some((meta::name(n)?.to_string(), node_cidr(n)?)))
                    .collect(),
            );
        }
        let blocks = guard.get_or_insert_with(HashMap::new);
        if let Some(cidr) = node_cidr(&node) {
            blocks.insert(node_name.to_string(), cidr);
            return Ok(Some(cidr));
        }
        let pods = node
            .at("/status/capacity/pods")
            .and_then(Value::as_str)
            .and_then(|p| p.parse().ok())
            .unwrap_or(110);
        let prefix = prefix_for(pods);
        let free = |blocks: &HashMap<String, Ipv4Net>| {
            let taken: Vec<Ipv4Net> = blocks.values().copied().collect();
            first_free(CLUSTER_CIDR, &taken, prefix)
        };
        let mut cidr = free(blocks);
        if cidr.is_none() {
            // Full: release the blocks of nodes that are gone (the cache
            // may lag behind a new Node: the store has the last word), and
            // look again.
            blocks.retain(|name, _| {
                self.nodes.get("", name).is_some() || registry.get(rt, "", name).is_ok()
            });
            cidr = free(blocks);
        }
        let Some(cidr) = cidr else {
            tracing::warn!(node = node_name, cluster_cidr = %CLUSTER_CIDR, "no pod CIDR left for the node");
            return Ok(None);
        };
        let mut updated = node.clone();
        if !updated.get("spec").is_some_and(Value::is_object) {
            updated["spec"] = json!({});
        }
        updated["spec"]["podCIDR"] = json!(cidr.to_string());
        updated["spec"]["podCIDRs"] = json!([cidr.to_string()]);
        let opts = WriteOptions {
            field_manager: FIELD_MANAGER.into(),
            ..Default::default()
        };
        match registry
            .update(rt, "", node_name, updated, Subresource::Main, &opts)
            .await
        {
            Ok(_) => {
                blocks.insert(node_name.to_string(), cidr);
                Ok(Some(cidr))
            }
            // Changed meanwhile (labels, taints): the next session allocates.
            Err(e) if e.reason == Reason::Conflict => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn node_cidr(node: &Value) -> Option<Ipv4Net> {
    node.at("/spec/podCIDR")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .filter(|_: &Ipv4Net| meta::name(node).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn blocks_are_sized_by_pod_capacity() {
        assert_eq!(prefix_for(110), 24);
        assert_eq!(prefix_for(1000), 21);
        assert_eq!(prefix_for(10_000), 17);
        assert_eq!(prefix_for(1_000_000), 16);
    }

    #[test]
    fn the_first_free_aligned_block_is_taken() {
        let cluster = net("10.128.0.0/9");
        assert_eq!(first_free(cluster, &[], 24), Some(net("10.128.0.0/24")));
        let taken = [net("10.128.0.0/24"), net("10.128.2.0/24")];
        assert_eq!(first_free(cluster, &taken, 24), Some(net("10.128.1.0/24")));
        // A /21 must be aligned: past both small blocks.
        assert_eq!(first_free(cluster, &taken, 21), Some(net("10.128.8.0/21")));
        let full = [net("10.128.0.0/9")];
        assert_eq!(first_free(cluster, &full, 24), None);
        let small = net("10.0.0.0/23");
        assert_eq!(
            first_free(small, &[net("10.0.0.0/24")], 24),
            Some(net("10.0.1.0/24"))
        );
        assert_eq!(
            first_free(small, &[net("10.0.1.0/24"), net("10.0.0.0/24")], 24),
            None
        );
    }
}
