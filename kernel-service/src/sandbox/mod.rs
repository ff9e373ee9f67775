//! Sandboxed jobs: namespaces, cgroup limits, lifecycle and output streaming.
