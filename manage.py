#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import secrets
import sys

# Commands that read only the models, the migration files and the schema: they sign, hash and decrypt
# nothing, so a checkout without `.env` or SECRET_KEY (a migration check on a clean clone) can run them.
# Every other command, and every server, still needs the real key (smsportal/settings.py).
KEYLESS_COMMANDS = {"makemigrations", "showmigrations", "sqlmigrate"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")
    if len(sys.argv) > 1 and sys.argv[1] in KEYLESS_COMMANDS and not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)  # a throwaway: this process signs nothing
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
