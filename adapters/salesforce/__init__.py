"""Salesforce behind the CRM protocol, through simple-salesforce."""
