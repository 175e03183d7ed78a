//! Skiff node: the agent that joins a control plane over QUIC, supervises pods in the
//! runtime and proxies Service traffic. A library first; `skiff node` wraps it. Built out in issue 4.
