"""Transfers to the police and procuratorate (行政执法与刑事司法衔接) and their evidence packages."""
