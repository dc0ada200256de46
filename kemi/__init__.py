"""Code that Kamailio's app_python3 loads: it reads SIP through KSR, asks the decision core in
``control.core`` and executes the directive. Importing this package does not need Kamailio."""
