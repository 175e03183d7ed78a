//! Choosing an endpoint for a request: round-robin, or power of two choices
//! over in-flight requests (linkerd's balancer), with `sessionAffinity:
//! ClientIP` keeping a client on the endpoint it had. One balancer per
//! Service, kept across routing-table rebuilds so counters and stickiness
//! survive an endpoint change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::table::{EndpointRoute, Policy};

/// Affinity entries are swept when the map grows past this many, so a
/// stream of one-off clients cannot grow it without bound.
const AFFINITY_SWEEP_AT: usize = 4096;

/// A Service's balancing state.
#[derive(Debug, Default)]
pub struct Balancer {
    next: AtomicUsize,
    /// Endpoint address -> requests in flight to it.
    in_flight: Mutex<HashMap<IpAddr, Arc<AtomicUsize>>>,
    /// Client address -> (endpoint address, last request).
    affinity: Mutex<HashMap<IpAddr, (IpAddr, Instant)>>,
}

/// A request counted in flight to an endpoint until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Balancer {
    /// Picks among `candidates` (never one in `exclude`): the client's sticky
    /// endpoint if it has a live one, else by `policy`. `None` when no
    /// candidate is left.
    pub fn pick<'a>(
        &self,
        policy: Policy,
        affinity: Option<Duration>,
        client: IpAddr,
        candidates: &[&'a EndpointRoute],
        exclude: &[IpAddr],
    ) -> Option<&'a EndpointRoute> {
        let usable: Vec<&EndpointRoute> = candidates
            .iter()
            .copied()
            .filter(|e| !exclude.contains(&e.ip))
            .collect();
        if usable.is_empty() {
            return None;
        }
        let Some(timeout) = affinity else {
            return Some(self.choose(policy, &usable));
        };
        let now = Instant::now();
        let mut sticky = lock(&self.affinity);
        if let Some((ip, last)) = sticky.get(&client)
            && now.duration_since(*last) < timeout
            && let Some(e) = usable.iter().find(|e| e.ip == *ip)
        {
            let e = *e;
            sticky.insert(client, (e.ip, now));
            return Some(e);
        }
        let chosen = self.choose(policy, &usable);
        if sticky.len() >= AFFINITY_SWEEP_AT {
            sticky.retain(|_, (_, last)| now.duration_since(*last) < timeout);
        }
        sticky.insert(client, (chosen.ip, now));
        Some(chosen)
    }

    fn choose<'a>(&self, policy: Policy, usable: &[&'a EndpointRoute]) -> &'a EndpointRoute {
        match (policy, usable) {
            (_, [only]) => only,
            (Policy::RoundRobin, _) => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                usable[n % usable.len()]
            }
            (Policy::LeastRequest, _) => {
                let mut rng = rand::rng();
                let a = rng.random_range(0..usable.len());
                let mut b = rng.random_range(0..usable.len() - 1);
                if b >= a {
                    b += 1;
                }
                let (ea, eb) = (usable[a], usable[b]);
                if self.load(ea.ip) <= self.load(eb.ip) {
                    ea
                } else {
                    eb
                }
            }
        }
    }

    fn load(&self, ip: IpAddr) -> usize {
        lock(&self.in_flight)
            .get(&ip)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Counts a request to `ip` as in flight.
    pub fn start(&self, ip: IpAddr) -> InFlight {
        let counter = lock(&self.in_flight).entry(ip).or_default().clone();
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }

    /// Forgets endpoints no longer in the Service (their counters and the
    /// clients stuck to them).
    pub fn retain(&self, live: &[IpAddr]) {
        lock(&self.in_flight).retain(|ip, c| live.contains(ip) || c.load(Ordering::Relaxed) > 0);
        lock(&self.affinity).retain(|_, (ip, _)| live.contains(ip));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn endpoints(n: u8) -> Vec<EndpointRoute> {
        (1..=n)
            .map(|i| EndpointRoute {
                ip: IpAddr::from([10, 0, 0, i]),
                node_name: None,
                pod: None,
                ready: true,
                serving: true,
                terminating: false,
                ports: BTreeMap::new(),
            })
            .collect()
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([192, 168, 0, i])
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let eps = endpoints(6);
        let refs: Vec<&EndpointRoute> = eps.iter().collect();
        let b = Balancer::default();
        let mut counts: HashMap<IpAddr, usize> = HashMap::new();
        for _ in 0..600 {
            let e = b
                .pick(Policy::RoundRobin, None, client(1), &refs, &[])
                .unwrap();
            *counts.entry(e.ip).or_default() += 1;
        }
        assert_eq!(counts.len(), 6);
        assert!(counts.values().all(|c| *c == 100), "{counts:?}");
    }

    #[test]
    fn exclusion_and_empty() {
        let eps = endpoints(2);
        let refs: Vec<&EndpointRoute> = eps.iter().collect();
        let b = Balancer::default();
        for _ in 0..10 {
            let e = b
                .pick(Policy::RoundRobin, None, client(1), &refs, &[eps[0].ip])
                .unwrap();
            assert_eq!(e.ip, eps[1].ip);
        }
        assert!(
            b.pick(
                Policy::RoundRobin,
                None,
                client(1),
                &refs,
                &[eps[0].ip, eps[1].ip]
            )
            .is_none()
        );
        assert!(
            b.pick(Policy::LeastRequest, None, client(1), &[], &[])
                .is_none()
        );
    }

    #[test]
    fn least_request_prefers_the_less_loaded() {
        let eps = endpoints(2);
        let refs: Vec<&EndpointRoute> = eps.iter().collect();
        let b = Balancer::default();
        let _busy: Vec<InFlight> = (0..5).map(|_| b.start(eps[0].ip)).collect();
        for _ in 0..100 {
            let e = b
                .pick(Policy::LeastRequest, None, client(1), &refs, &[])
                .unwrap();
            assert_eq!(e.ip, eps[1].ip);
        }
        drop(_busy);
        let _other: Vec<InFlight> = (0..5).map(|_| b.start(eps[1].ip)).collect();
        let e = b
            .pick(Policy::LeastRequest, None, client(1), &refs, &[])
            .unwrap();
        assert_eq!(e.ip, eps[0].ip);
    }

    #[test]
    fn least_request_over_many_avoids_the_most_loaded() {
        let eps = endpoints(4);
        let refs: Vec<&EndpointRoute> = eps.iter().collect();
        let b = Balancer::default();
        let _busy: Vec<InFlight> = (0..10).map(|_| b.start(eps[3].ip)).collect();
        for _ in 0..200 {
            let e = b
                .pick(Policy::LeastRequest, None, client(1), &refs, &[])
                .unwrap();
            // P2C never picks the worst of two, and the busy one is worst.
            assert_ne!(e.ip, eps[3].ip);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn affinity_sticks_then_expires() {
        let eps = endpoints(3);
        let refs: Vec<&EndpointRoute> = eps.iter().collect();
        let b = Balancer::default();
        let timeout = Some(Duration::from_secs(60));
        let first = b
            .pick(Policy::RoundRobin, timeout, client(1), &refs, &[])
            .unwrap()
            .ip;
        for _ in 0..20 {
            // Other clients move the round-robin along.
            b.pick(Policy::RoundRobin, timeout, client(2), &refs, &[]);
            let again = b
                .pick(Policy::RoundRobin, timeout, client(1), &refs, &[])
                .unwrap();
            assert_eq!(again.ip, first);
            tokio::time::advance(Duration::from_secs(50)).await;
        }
        // Idle past the timeout: the next pick is a fresh one, and sticks anew.
        tokio::time::advance(Duration::from_secs(61)).await;
        let fresh = b
            .pick(Policy::RoundRobin, timeout, client(1), &refs, &[])
            .unwrap()
            .ip;
        assert_ne!(fresh, first);
        // A sticky endpoint that is excluded (it failed) is left for another.
        let moved = b
            .pick(Policy::RoundRobin, timeout, client(1), &refs, &[fresh])
            .unwrap()
            .ip;
        assert_ne!(moved, fresh);
    }
}
