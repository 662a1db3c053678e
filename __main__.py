"""The vast-gpu Pulumi program: stack config -> VastInstance(s) -> exports. Composition only.

No logic and no HTTP here: the provider (providers/instance.py) does the work, so the program
stays a readable list of what the stack holds. The VastInstance resource arrives with issue 4;
until then the program declares no resources and `pulumi up` of any stack changes nothing.
"""
