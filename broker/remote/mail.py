"""E-mails to people (smtplib): sent only when BROKER_SMTP_HOST is set; a failure is logged, never raised."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from broker.remote.settings import RemoteSettings, get_remote_settings

logger = logging.getLogger(__name__)


def configured(settings: RemoteSettings | None = None) -> bool:
    return bool((settings or get_remote_settings()).smtp_host)


def send(recipients: list[str], subject: str, body: str, settings: RemoteSettings | None = None) -> bool:
    """Send a plain-text e-mail; True when the server accepted it."""
    settings = settings or get_remote_settings()
    recipients = [r for r in recipients if r and "@" in r]
    if not settings.smtp_host or not recipients:
        return False
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message.set_content(body)
    try:
        smtp: smtplib.SMTP
        if settings.smtp_ssl:  # RFC 8314 implicit TLS
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.smtp_timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds)
        with smtp:
            if settings.smtp_starttls and not settings.smtp_ssl:  # RFC 3207
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user and settings.smtp_password is not None:
                smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The exception text never holds the password; the host and error class are enough to act on.
        logger.warning(
            "e-mail to %d recipient(s) via %s failed: %s",
            len(recipients),
            settings.smtp_host,
            type(exc).__name__,
        )
        return False
    logger.info("e-mail « %s » sent to %d recipient(s)", subject, len(recipients))
    return True
