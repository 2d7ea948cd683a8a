"""The telephony domain: agent logins, voice servers, call state and history, the session worker."""
