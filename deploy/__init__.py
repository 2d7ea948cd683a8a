"""The production deployment's files (nginx, systemd, Procfile, settings) and ``deploy.local``, which
starts the same shape on loopback; ``deploy.processes`` starts and stops those processes for it, for the
benches and for the multi-process tests."""
