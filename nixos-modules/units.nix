# Maps one unit of systemd/units.nix (the one source shared with systemd/*.service) onto a
# NixOS systemd.services entry. Ordering and dependencies go through the module system's list
# options (after, wants, requires, ...), so other modules can add to them and nothing is lost.
lib: unit:
let
  u = unit.Unit;
  s = unit.Service;
in
{
  description = u.Description;
  documentation = lib.toList (u.Documentation or [ ]);
  after = u.After or [ ];
  wants = u.Wants or [ ];
  requires = u.Requires or [ ];
  partOf = u.PartOf or [ ];
  wantedBy = unit.Install.WantedBy or [ ];
  unitConfig = removeAttrs u [
    "Description"
    "Documentation"
    "After"
    "Wants"
    "Requires"
    "PartOf"
  ];
  environment = s.Environment or { };
  serviceConfig = removeAttrs s [ "Environment" ];
}
