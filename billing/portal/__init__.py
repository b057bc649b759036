"""The portal's Billing section (balance, ledger, usage, prices, savings) and the public savings calculator."""
