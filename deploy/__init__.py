"""The production deployment's files (nginx, systemd, Procfile, settings) and ``deploy.local``, which
starts the same shape on loopback."""
