"""The application: the conversation service and its ports, the Telegram and terminal
transports, and the ``capret`` command line; the only package that uses both engine and store.
"""
