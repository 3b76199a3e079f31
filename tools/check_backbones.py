from protune_mm.cli.check_backbones import main

if __name__ == '__main__':
    raise SystemExit(main())
